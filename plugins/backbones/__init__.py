"""Backbone and weights plugins: frozen feature extractors (timm, open_clip, ONNX, DINO) and LPIPS weights."""
