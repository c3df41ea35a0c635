"""Performance-critical primitives, each a fast path with a plain-PyTorch reference twin.

Import from the submodules (``from zoo.kernels.attention import attention, attention_ref``); this layer
imports only torch.
"""
