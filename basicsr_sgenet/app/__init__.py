"""A local web page to deblur your own photos with one or more models side by side.

    python -m basicsr_sgenet.app            # http://127.0.0.1:7860, this machine only
    sgenet-app --port 8000

``session.py`` runs the models (the deblur CLI's own code: same arguments, restorer,
tiling and output files, so a result from the page is the CLI's file, bit for bit) and
needs nothing beyond the plugin; ``page.py`` is the Gradio page (the ``app`` extra:
``pip install -e ".[app]"``). Importing ``basicsr_sgenet`` never imports Gradio.
"""
