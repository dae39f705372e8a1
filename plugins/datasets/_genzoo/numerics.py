"""The pinned numeric environment the zoo is built in, so that a seed gives the same images on any x86 CPU.

Floating-point results on a CPU depend on more than the seed: ATen picks AVX2 or AVX-512 kernels by CPU
(different vector widths sum in different orders), MKL picks its code branch by CPU, oneDNN and NNPACK
choose CPU-specific convolution kernels and blockings, and parallel reductions split work by thread count.
Training amplifies a last-bit difference into different images (measured on the tiny preset: AVX-512 vs
AVX2 kernels, 1 vs 2 threads, MKL's AVX-512 vs AVX2 path each change every generator's images).

The build therefore runs in a child process whose environment is set before torch is imported (the
dispatch variables are read once, at import): ATen's AVX2 kernels (``ATEN_CPU_CAPABILITY=avx2``), MKL's
conditional numerical reproducibility on its AVX2 branch (``MKL_CBWR=AVX2``, which Intel documents as
bitwise reproducible across CPUs that have AVX2, for a fixed thread count), one thread, oneDNN and NNPACK
off (convolutions then run as im2col + MKL GEMM), and deterministic algorithms. Measured as CPU time per
training step at the default preset's batch sizes, float64 with scalar kernels and MKL's SSE2 branch
(``default``/``COMPATIBLE``) costs 10x the unpinned build; these AVX2 settings in float32 about 1.7-2x (mostly
oneDNN off and AVX2 rather than AVX-512 GEMM). One thread, since reductions split work by thread count: with
two, a machine shared with other jobs spent 9x the CPU time spinning in OpenMP barriers (measured).

A CPU without AVX2, or not x86, builds with what it has; package versions matter too. Either way the
build's checksum is compared with the reference build's (:mod:`.reference`), which says when they differ.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

KERNEL_LEVELS = ("DEFAULT", "AVX2", "AVX512")  # ATen's x86 kernel sets, lowest first


@dataclass(frozen=True)
class Numerics:
    """How the zoo's generators compute: dtype, thread count and CPU-dispatch settings."""

    dtype: str = "float32"
    threads: int = 1
    cpu_capability: str | None = "avx2"  # ATEN_CPU_CAPABILITY; None leaves the CPU's best kernels
    mkl_cbwr: str | None = "AVX2"  # MKL_CBWR ISA branch (also MKL_ENABLE_INSTRUCTIONS); None: MKL's choice
    onednn: bool = False  # oneDNN (mkldnn) and NNPACK convolutions: CPU-specific blocking

    def environment(self) -> dict[str, str]:
        """Variables the child process must start with (they take effect only before torch is imported)."""
        env = {
            "OMP_NUM_THREADS": str(self.threads),
            "MKL_NUM_THREADS": str(self.threads),
            "OMP_DYNAMIC": "FALSE",
            "MKL_DYNAMIC": "FALSE",
            # glibc: keep im2col buffers (up to ~1 GB) on the heap instead of a fresh mmap per convolution;
            # page faults were 18% of the build's CPU time (speed only; results do not change)
            "MALLOC_MMAP_THRESHOLD_": str(4 << 30),
        }
        if self.cpu_capability:
            env["ATEN_CPU_CAPABILITY"] = self.cpu_capability
        if self.mkl_cbwr:  # MKL_ENABLE_INSTRUCTIONS would override the branch (measured: AVX512 does)
            env["MKL_CBWR"] = env["MKL_ENABLE_INSTRUCTIONS"] = self.mkl_cbwr
        return env

    def apply(self) -> dict[str, Any]:
        """Configure torch in this (child) process and return what is in effect, for the manifest.

        A CPU without the requested kernels (no AVX2, or not x86) builds anyway with what it has; its
        images may then differ from the reference build's, which the checksum comparison reports. Raises
        only when ATen runs *better* kernels than requested: torch was imported before the variables were set.
        """
        import torch

        kernels = torch.backends.cpu.get_cpu_capability()
        wanted = (self.cpu_capability or "").upper()
        if (
            wanted in KERNEL_LEVELS
            and kernels in KERNEL_LEVELS
            and KERNEL_LEVELS.index(kernels) > KERNEL_LEVELS.index(wanted)
        ):
            raise RuntimeError(
                f"ATen dispatches {kernels} kernels, not {self.cpu_capability}: the zoo build "
                "must run in a fresh process started with Numerics.environment()"
            )
        torch.set_num_threads(self.threads)
        torch.set_num_interop_threads(1)
        torch.backends.mkldnn.enabled = self.onednn  # type: ignore[assignment]  # a flag property on the module
        torch.backends.nnpack.set_flags(self.onednn)
        torch.use_deterministic_algorithms(True)
        # Deterministic mode also fills every new tensor with NaN (a debugging aid; kernels never read the
        # uninitialised memory): 29% of the CPU time of this build, measured.
        torch.utils.deterministic.fill_uninitialized_memory = False  # type: ignore[attr-defined]
        torch.set_default_dtype(getattr(torch, self.dtype))
        return {**asdict(self), "aten_kernels": kernels, "mkl": torch.backends.mkl.is_available()}


PINNED = Numerics()
