"""The local web app, ``arasfsr ui`` (optional extra ``arasfsr[ui]``: Gradio).

Nothing here imports Gradio: ``arasfsr.ui.command`` (the command's options and start, for
``arasfsr ui`` and ``python -m arasfsr.ui``) goes without it; ``arasfsr.ui.app``
(``build_app``, ``serve``) needs it.
"""
