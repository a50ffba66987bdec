"""The Gradio page: images and models in, results side by side out.

Each result is shown over its input with a before/after split that follows the mouse;
the mouse wheel zooms and dragging pans, and every view of one image zooms, pans and
splits together, so models are compared on the same pixels. Under each view: the model,
its time and device, and a link to the result file (the deblur CLI's file: same bit
depth, grayscale and alpha). Runs are in ``session.py``.
"""
import atexit
import html
import os
import re
import shutil
import tempfile
import urllib.parse

import cv2
import numpy as np

from basicsr_sgenet.app import session
from basicsr_sgenet.integration.errors import DependencyError, UserError
from basicsr_sgenet.inference.backends import PRECISION_CHOICES
from basicsr_sgenet.inference.network import plugin_archs

# Formats Chromium, Firefox and Safari all display; others (TIFF) get a PNG preview.
BROWSER_FORMATS = ('.png', '.jpg', '.jpeg', '.webp', '.bmp')
KEPT_RUNS = 8  # result folders kept per server (older ones are deleted)

CSS = """
.sgenet-image h3 { margin: 12px 0 4px; }
.sgenet-grid { display: grid; gap: 10px; }
.sgenet-panel { margin: 0; min-width: 0; }
.sgenet-panel figcaption { font-size: 13px; line-height: 1.35; margin-top: 4px; overflow-wrap: anywhere; }
.sgenet-view { position: relative; overflow: hidden; cursor: ew-resize; background: #222;
               user-select: none; touch-action: none; }
.sgenet-view img { position: absolute; left: 0; top: 0; width: 100%; height: 100%; max-width: none;
                   transform-origin: 0 0; pointer-events: none; image-rendering: pixelated; }
.sgenet-clip { position: absolute; inset: 0; clip-path: inset(0 0 0 50%); }
.sgenet-handle { position: absolute; top: 0; bottom: 0; left: 50%; width: 2px; background: #fff;
                 box-shadow: 0 0 3px #000; pointer-events: none; }
.sgenet-tag { position: absolute; top: 4px; padding: 1px 5px; font-size: 11px; color: #fff;
              background: rgba(0,0,0,.55); border-radius: 3px; pointer-events: none; }
.sgenet-error { color: #b00020; font-weight: 600; }
"""

# Event delegation on the document: the result HTML is replaced after every run.
HEAD = """<script>
(() => {
  const groups = {};
  const state = (g) => groups[g] || (groups[g] = {zoom: 1, x: 0, y: 0, split: 0.5});
  const apply = (g) => {
    const s = state(g);
    document.querySelectorAll(`.sgenet-view[data-group="${g}"]`).forEach((view) => {
      view.querySelectorAll('img').forEach((img) => {
        img.style.transform = `translate(${s.x * 100}%, ${s.y * 100}%) scale(${s.zoom})`;
      });
      view.querySelector('.sgenet-clip').style.clipPath = `inset(0 0 0 ${s.split * 100}%)`;
      view.querySelector('.sgenet-handle').style.left = `${s.split * 100}%`;
    });
  };
  const where = (view, e) => {
    const r = view.getBoundingClientRect();
    return [(e.clientX - r.left) / r.width, (e.clientY - r.top) / r.height];
  };
  let drag = null;
  document.addEventListener('pointerdown', (e) => {
    const view = e.target.closest && e.target.closest('.sgenet-view');
    if (!view) return;
    const s = state(view.dataset.group);
    const [u, v] = where(view, e);
    drag = {view, u, v, x: s.x, y: s.y, moved: false};
  });
  document.addEventListener('pointermove', (e) => {
    const view = drag ? drag.view : (e.target.closest && e.target.closest('.sgenet-view'));
    if (!view) return;
    const g = view.dataset.group, s = state(g);
    const [u, v] = where(view, e);
    if (drag && e.buttons) {
      s.x = drag.x + u - drag.u; s.y = drag.y + v - drag.v; drag.moved = true;
    } else {
      drag = null;
      s.split = Math.min(1, Math.max(0, u));
    }
    apply(g);
  });
  document.addEventListener('pointerup', () => { drag = null; });
  document.addEventListener('wheel', (e) => {
    const view = e.target.closest && e.target.closest('.sgenet-view');
    if (!view) return;
    e.preventDefault();
    const g = view.dataset.group, s = state(g);
    const [u, v] = where(view, e);
    const zoom = Math.min(32, Math.max(1, s.zoom * (e.deltaY < 0 ? 1.25 : 0.8)));
    // keep the pixel under the mouse where it is
    s.x = u - (u - s.x) * zoom / s.zoom; s.y = v - (v - s.y) * zoom / s.zoom; s.zoom = zoom;
    if (zoom === 1) { s.x = 0; s.y = 0; }
    apply(g);
  }, {passive: false});
  document.addEventListener('dblclick', (e) => {
    const view = e.target.closest && e.target.closest('.sgenet-view');
    if (!view) return;
    const g = view.dataset.group;
    groups[g] = {zoom: 1, x: 0, y: 0, split: state(g).split};
    apply(g);
  });
})();
</script>"""

MODELS_HELP = ('One model per line: `ARCH [JSON arch arguments] WEIGHTS` or `OPTIONS.yml [WEIGHTS]`. '
               'WEIGHTS: a file or an https:// URL (downloaded once; optional `#sha256=<hex>`). Archs: {archs}.')


def import_gradio():
    os.environ.setdefault('GRADIO_ANALYTICS_ENABLED', 'False')  # a local page calls nobody
    try:
        import gradio
    except ImportError as err:
        raise DependencyError(f'The web page needs Gradio ({err}); install it with pip install -e ".[app]"') from None
    return gradio


def file_url(path):
    return '/gradio_api/file=' + urllib.parse.quote(os.path.abspath(path))


def browser_copy(path, folder, name):
    """A file the browser can show for the image file ``path``: itself if browsers display
    its format, else an 8-bit PNG of its samples (alpha kept) in ``folder``."""
    if os.path.splitext(path)[1].lower() in BROWSER_FORMATS:
        return path
    samples = cv2.imread(path, cv2.IMREAD_UNCHANGED)
    if samples.dtype != np.uint8:
        samples = (samples.astype(np.float32) / 257.0).round().astype(np.uint8)
    os.makedirs(folder, exist_ok=True)
    target = os.path.join(folder, name + '.png')
    cv2.imwrite(target, samples)
    return target


def describe_file(image):
    bits = '16-bit' if image.dtype == np.uint16 else '8-bit'
    kind = 'gray' if image.grayscale else 'RGB'
    return f'{bits} {kind}' + (' + alpha' if image.alpha is not None else '')


def results_html(images, run_dir):
    """The side-by-side views of a run (an [ImageResults])."""
    parts = []
    for index, entry in enumerate(images):
        title = html.escape(entry.name)
        if entry.error:
            parts.append(f'<div class="sgenet-image"><h3>{title}</h3><p class="sgenet-error">{html.escape(entry.error)}'
                         '</p></div>')
            continue
        height, width = entry.image.rgb.shape[:2]
        before = browser_copy(entry.path, os.path.join(run_dir, 'previews'), f'input{index}')
        panels = []
        for number, result in enumerate(entry.results):
            model = html.escape(result.model.text)
            if result.error:
                panels.append(f'<figure class="sgenet-panel" data-model="{model}"><figcaption><b>{model}</b>'
                              f'</figcaption><p class="sgenet-error">{html.escape(result.error)}</p></figure>')
                continue
            after = browser_copy(result.output_path, os.path.join(run_dir, 'previews'),
                                 f'result{index}_{number}')
            name = os.path.basename(result.output_path)
            panels.append(
                f'<figure class="sgenet-panel" data-model="{model}">'
                f'<div class="sgenet-view" data-group="image{index}" style="aspect-ratio: {width} / {height}">'
                f'<img class="sgenet-before" src="{file_url(before)}" alt="input">'
                f'<div class="sgenet-clip"><img class="sgenet-after" src="{file_url(after)}" alt="result"></div>'
                '<div class="sgenet-handle"></div><span class="sgenet-tag" style="left:4px">before</span>'
                '<span class="sgenet-tag" style="right:4px">after</span></div>'
                f'<figcaption><b>{model}</b><br>{result.seconds:.2f} s on {html.escape(result.device)} '
                f'({html.escape(result.plan.split(" on ")[0])}) · '
                f'<a class="sgenet-download" href="{file_url(result.output_path)}" download="{html.escape(name)}">'
                f'download {html.escape(name)}</a> ({describe_file(entry.image)})</figcaption></figure>')
        columns = max(1, len(panels))
        parts.append(f'<div class="sgenet-image"><h3>{title}</h3><div class="sgenet-grid" '
                     f'style="grid-template-columns: repeat({columns}, minmax(0, 1fr))">{"".join(panels)}</div></div>')
    return ''.join(parts)


def markdown_text(text):
    """``text`` shown as it is in Markdown (file names hold _ and *, arch arguments [ ])."""
    return re.sub(r'([\\`*_{}\[\]<>()#+!|~])', r'\\\1', text)


def status_text(images):
    done = sum(1 for entry in images for result in entry.results if not result.error)
    problems = [entry.error for entry in images if entry.error]  # the message names the file
    problems += [f'{result.model.text} on {entry.name}: {result.error}' for entry in images
                 for result in entry.results if result.error]
    text = f'{done} result(s).'
    if problems:
        text += ' ' + ' '.join(f'**Error** — {markdown_text(problem)}' for problem in problems)
    return text


class Page:
    """The page's state: where results go and the restorers already built."""

    def __init__(self, work_dir):
        self.work_dir = work_dir
        self.restorers = session.Restorers()
        self.runs = 0

    def new_run_dir(self):
        self.runs += 1
        run_dir = os.path.join(self.work_dir, f'run{self.runs}')
        old = os.path.join(self.work_dir, f'run{self.runs - KEPT_RUNS}')
        shutil.rmtree(old, ignore_errors=True)
        os.makedirs(run_dir)
        return run_dir

    def deblur(self, files, models_text, device, precision, tile, tile_overlap, progress=None):
        """(status Markdown, results HTML, result files) for the page; never raises."""
        try:
            paths = [getattr(item, 'name', item) for item in (files or [])]
            if not paths:
                return 'Drop one or more images first.', '', []
            models = session.parse_models(models_text)
            settings = session.Settings(device, precision, int(tile or 0), int(64 if tile_overlap is None
                                                                                else tile_overlap))
            run_dir = self.new_run_dir()
            on_progress = (lambda fraction, text: progress(fraction, desc=text)) if progress else None
            images = session.run(self.restorers, paths, models, settings, run_dir, on_progress)
            files = [result.output_path for entry in images for result in entry.results if result.output_path]
            return status_text(images), results_html(images, run_dir), files
        except Exception as err:  # noqa: BLE001  (one message on the page; the server keeps running)
            return f'**Error** — {markdown_text(session.readable(err))}', '', []


def device_choices():
    import torch
    return ['auto', 'cpu'] + (['cuda'] if torch.cuda.is_available() else [])


def build(work_dir, models_text=''):
    """The Gradio Blocks of the page, writing results under ``work_dir``."""
    gr = import_gradio()
    page = Page(work_dir)

    def deblur(files, models_text, device, precision, tile, tile_overlap, progress=gr.Progress()):
        return page.deblur(files, models_text, device, precision, tile, tile_overlap, progress)

    with gr.Blocks(title='basicsr-sgenet: deblur and compare', analytics_enabled=False) as blocks:
        gr.Markdown('## Deblur and compare\nDrop images, list models, press **Deblur**. Move the mouse over a result '
                    'to move the before/after split; scroll to zoom and drag to pan (all views of an image '
                    'follow); double-click to reset the zoom.')
        with gr.Row():
            with gr.Column(scale=1):
                images = gr.File(label='Images', file_count='multiple', type='filepath', elem_id='sgenet-images')
            with gr.Column(scale=2):
                models = gr.Textbox(value=models_text, label='Models', lines=3, elem_id='sgenet-models',
                                    info=MODELS_HELP.format(archs=', '.join(plugin_archs())),
                                    placeholder='NAFNet {"width": 32} weights/nafnet.pth\n'
                                    'options/test_SGENet_GoPro.yml')
                with gr.Row():
                    device = gr.Dropdown(device_choices(), value='auto', label='Device', elem_id='sgenet-device')
                    precision = gr.Dropdown(list(PRECISION_CHOICES), value='auto', label='Precision',
                                            elem_id='sgenet-precision')
                    tile = gr.Number(0, precision=0, minimum=0, label='Tile (0: whole image)', elem_id='sgenet-tile')
                    tile_overlap = gr.Number(64, precision=0, minimum=0, label='Tile overlap',
                                             elem_id='sgenet-overlap')
                run = gr.Button('Deblur', variant='primary', elem_id='sgenet-run')
        status = gr.Markdown(elem_id='sgenet-status')
        results = gr.HTML(elem_id='sgenet-results')
        downloads = gr.File(label='All results', file_count='multiple', interactive=False, elem_id='sgenet-downloads')
        run.click(deblur, [images, models, device, precision, tile, tile_overlap], [status, results, downloads])
    return blocks


def serve(host='127.0.0.1', port=7860, models_text='', block=True):
    """Build the page and serve it; returns (blocks, work_dir). ``block=False`` returns
    while serving (tests); the caller then closes ``blocks`` and removes ``work_dir``."""
    work_dir = tempfile.mkdtemp(prefix='sgenet-app-')
    atexit.register(shutil.rmtree, work_dir, ignore_errors=True)  # also when the caller forgets
    blocks = build(work_dir, models_text)
    blocks.queue(default_concurrency_limit=1)  # one run at a time: the machine's cores are shared by all runs
    try:
        blocks.launch(server_name=host, server_port=port, allowed_paths=[work_dir], css=CSS, head=HEAD,
                      prevent_thread_lock=not block, quiet=not block, show_error=False, inbrowser=False)
    except OSError as err:
        shutil.rmtree(work_dir, ignore_errors=True)
        raise UserError(f'Cannot serve on {host}:{port} ({err})') from None
    if block:  # stopped (Ctrl+C): the results go with the server
        shutil.rmtree(work_dir, ignore_errors=True)
    return blocks, work_dir
