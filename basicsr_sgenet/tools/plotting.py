"""The labelled scatter plot that benchmark.py and compare.py draw, and the image panels
the demo writes (blurred | restored | sharp, with a zoom). matplotlib is
optional: without it the plot is skipped with a message saying how to get it."""


def labelled_scatter(points, path, xlabel, ylabel, log_y=False, command=None):
    """Plot ``(x, y, label)`` points (log x axis) to ``path``, marked as written by
    ``command`` (see integration/own_outputs.py) and written atomically; returns what
    happened. InferenceError naming ``path`` when it cannot be written (a full disk)."""
    try:
        import matplotlib
        matplotlib.use('Agg')
        import matplotlib.pyplot as plt
    except ImportError:
        return f'matplotlib is not installed: skipped the plot {path} (pip install matplotlib to get it)'
    fig, ax = plt.subplots(figsize=(7, 5))
    for x, y, label in points:
        ax.scatter(x, y)
        ax.annotate(label, (x, y), fontsize=7, xytext=(3, 3), textcoords='offset points')
    ax.set_xscale('log')
    if log_y:
        ax.set_yscale('log')
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(True, which='both', alpha=0.3)
    fig.tight_layout()
    from basicsr_sgenet.integration.atomic_files import atomic_write
    from basicsr_sgenet.integration.errors import InferenceError
    from basicsr_sgenet.integration.own_outputs import png_metadata
    try:
        with atomic_write(path) as f:
            fig.savefig(f, format='png', dpi=120, metadata=png_metadata(command) if command else None)
    except OSError as err:
        raise InferenceError(f'Cannot write {path} ({err.strerror or err}); nothing was written there') from None
    finally:
        plt.close(fig)
    return f'wrote {path}'


# ----------------------------------------------------------------------------- image panels

CAPTION_BAR = 24
PANEL_GAP = 6


def most_blurred_window(blurred, sharp, height, width):
    """(top, left) of the ``height x width`` window where ``blurred`` differs most from
    ``sharp``: where the blur is easiest to see, so a zoom shows what deblurring did."""
    import numpy as np
    error = np.abs(blurred.astype(np.float32) - sharp.astype(np.float32)).sum(axis=2)
    # Window sums for every position at once, from the summed-area table.
    table = np.pad(error, ((1, 0), (1, 0))).cumsum(0).cumsum(1)
    sums = table[height:, width:] - table[:-height, width:] - table[height:, :-width] + table[:-height, :-width]
    top, left = np.unravel_index(int(np.argmax(sums)), sums.shape)
    return int(top), int(left)


def comparison_panel(images, captions, zoom_window=None, zoom=3):
    """Images (RGB uint8, one size) side by side with a caption above each; with
    ``zoom_window`` (top, left, height, width) a second row shows that window of each,
    enlarged ``zoom`` times with square pixels, and a box marks it in the first row.
    Returns a BGR image for ``cv2.imwrite``."""
    import cv2
    import numpy as np

    image_height, image_width = images[0].shape[:2]
    columns = []
    for image, caption in zip(images, captions):
        shown = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
        parts = []
        if zoom_window is not None:
            top, left, height, width = zoom_window
            crop = shown[top:top + height, left:left + width]
            enlarged = cv2.resize(crop, (width * zoom, height * zoom), interpolation=cv2.INTER_NEAREST)
            shown = shown.copy()
            cv2.rectangle(shown, (left, top), (left + width - 1, top + height - 1), (0, 255, 255), 1)
            canvas = np.full((height * zoom, max(image_width, width * zoom), 3), 255, np.uint8)
            canvas[:, :width * zoom] = enlarged
            parts = [np.full((PANEL_GAP, canvas.shape[1], 3), 255, np.uint8), canvas]
        column_width = max(shown.shape[1], *(part.shape[1] for part in parts)) if parts else shown.shape[1]
        header = np.full((CAPTION_BAR, column_width, 3), 255, np.uint8)
        cv2.putText(header, caption, (4, 17), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
        top_row = np.full((image_height, column_width, 3), 255, np.uint8)
        top_row[:, :image_width] = shown
        columns.append(np.vstack([header, top_row, *parts]))
    height = max(column.shape[0] for column in columns)
    gap = np.full((height, PANEL_GAP, 3), 255, np.uint8)
    padded = [np.vstack([column, np.full((height - column.shape[0], column.shape[1], 3), 255, np.uint8)])
              for column in columns]
    return np.hstack([item for column in padded for item in (column, gap)][:-1])
