"""The local web app, ``arasfsr ui`` (optional extra ``arasfsr[ui]``: Gradio).

Nothing here imports Gradio: ``arasfsr.cli.ui`` registers the sub-command without it;
``arasfsr.ui.app`` (``build_app``, ``serve``) needs it.
"""
