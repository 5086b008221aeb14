"""Finding an NVIDIA GPU, through CuPy, for the GPU frontend and the TensorRT engine."""

from __future__ import annotations


def find_gpu():
    """(cupy, "GPU name (compute X.Y)") when CuPy imports and sees a CUDA device, else (None, why not)."""
    try:
        import cupy
    except ImportError as e:
        return None, f"CuPy is not installed ({e}; pip install 'streamgenre[gpu]')"
    try:
        if cupy.cuda.runtime.getDeviceCount() == 0:
            return None, "CuPy sees no CUDA GPU"
        name, capability = gpu_identity()
    except cupy.cuda.runtime.CUDARuntimeError as e:
        return None, f"no usable CUDA GPU ({e})"
    return cupy, f"{name} (compute {capability})"


def gpu_identity() -> tuple[str, str]:
    """The current GPU's name and compute capability ("9.0"): what a TensorRT plan is only valid for."""
    import cupy

    props = cupy.cuda.runtime.getDeviceProperties(cupy.cuda.Device().id)
    name = props["name"].decode() if isinstance(props["name"], bytes) else str(props["name"])
    return name, f"{props['major']}.{props['minor']}"
