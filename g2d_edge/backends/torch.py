"""Moved: the PyTorch backend runs training checkpoints and needs torch and the training code, which the runtime
never imports, so it lives with the export tools now (`export.torch_backend`). Importing this module says so."""
raise ImportError("g2d_edge.backends.torch moved to export.torch_backend: the PyTorch backend needs torch and the "
                  "training code, which the runtime never imports (pip install g2d-edge[train]; "
                  "`from export.torch_backend import TorchBackend`)", name="g2d_edge.backends.torch")
