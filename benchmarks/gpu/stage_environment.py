"""Stage 1, environment: the GPU, the library versions, which SDPA backends run, bf16, the two ceilings.

- ``nvidia-smi``: name, driver, memory, clocks (absent on the CPU: recorded so);
- versions of every package the suite or riskdpo imports, and which are missing;
- the scaled-dot-product-attention backends PyTorch has enabled, and for each
  backend forced alone (`torch.nn.attention.sdpa_kernel`) whether it runs a
  bf16 forward+backward at head dims 128 (Qwen3) and 80 (phi-2), with no mask
  and with a boolean 4D mask (riskdpo's packed mask), and which kernel ran;
- bf16: ``torch.cuda.is_bf16_supported()`` and riskdpo's `native_bf16_support`;
- the ceilings the other stages are judged by (METHOD.md): a bf16 matrix
  product (8192^3 on the GPU, 1024^3 in a dry run) in TFLOP/s, median of 10,
  and a device-to-device copy in GB/s (bytes read + written).
"""

from __future__ import annotations

import importlib.metadata
import statistics
import subprocess

from common import Context, SectionResult, Table, timed

PACKAGES = ("torch", "transformers", "accelerate", "peft", "trl", "datasets", "tokenizers", "safetensors",
            "huggingface-hub", "numpy", "pandas", "pyarrow", "fsspec", "dill", "multiprocess", "openpyxl",
            "et-xmlfile", "click", "pyyaml", "matplotlib", "tqdm", "psutil", "pytest", "hypothesis",
            "wandb", "gguf", "bitsandbytes", "flash-attn", "triton")


def nvidia_smi() -> str:
    query = "name,driver_version,memory.total,memory.used,clocks.sm,clocks.max.sm,power.limit"
    try:
        done = subprocess.run(["nvidia-smi", f"--query-gpu={query}", "--format=csv,noheader"], capture_output=True,
                              text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as error:
        return f"not available ({type(error).__name__})"
    return done.stdout.strip() or f"exit {done.returncode}: {done.stderr.strip()[:200]}"


def version(name: str) -> str:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return "missing"


def kernel_names(profile, limit: int = 4) -> list[str]:
    """The attention kernels a profiled region ran: on a GPU the device kernels (flash, memory-efficient
    (fmha/cutlass), cuDNN, or the math path's softmax), on the CPU the aten attention operators."""
    from torch.autograd import DeviceType

    events = profile.key_averages()
    gpu = [e.key for e in events if e.device_type == DeviceType.CUDA]
    if gpu:
        keys = ("flash", "fmha", "cutlass", "efficient", "cudnn", "attention", "softmax")
        names = [name for name in gpu if any(key in name.lower() for key in keys)]
    else:
        names = [e.key for e in events if e.key.startswith(("aten::_scaled_dot_product", "aten::_efficient_attention",
                                                               "aten::_flash_attention", "aten::_safe_softmax"))]
    return sorted({name[:70] for name in names})[:limit]


def probe_backend(backend, head_dim: int, masked: bool, device: str) -> list:
    """Whether `backend` alone runs a bf16 attention forward+backward; the kernels the profiler saw."""
    import torch
    from torch.nn.attention import sdpa_kernel
    from torch.nn.functional import scaled_dot_product_attention
    from torch.profiler import ProfilerActivity, profile

    generator = torch.Generator(device=device).manual_seed(0)
    shape = (2, 8, 256, head_dim)
    q, k, v = (torch.randn(shape, generator=generator, device=device, dtype=torch.bfloat16, requires_grad=True) for _ in range(3))
    mask = torch.ones(256, 256, dtype=torch.bool, device=device).tril()[None, None].expand(2, 1, 256, 256) if masked else None
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.startswith("cuda") else [])
    try:
        with sdpa_kernel([backend]), profile(activities=activities) as prof:
            out = scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=not masked)
            out.float().sum().backward()
    except RuntimeError as error:
        return [backend.name, head_dim, "bool 4D" if masked else "causal flag", "no", str(error).splitlines()[0][:90]]
    finite = bool(torch.isfinite(q.grad).all())
    return [backend.name, head_dim, "bool 4D" if masked else "causal flag", "yes" if finite else "NaN/inf grad",
            ", ".join(kernel_names(prof)) or "—"]


def matmul_tflops(device: str, n: int) -> float:
    import torch

    a = torch.randn(n, n, device=device, dtype=torch.bfloat16)
    b = torch.randn(n, n, device=device, dtype=torch.bfloat16)
    a @ b  # warm-up
    times = [timed(device, torch.matmul, a, b)[1] for _ in range(10)]
    return 2 * n**3 / statistics.median(times) / 1e12


def copy_gbps(device: str, megabytes: int) -> float:
    import torch

    source = torch.randn(megabytes * 2**20 // 4, device=device)
    target = torch.empty_like(source)
    target.copy_(source)
    times = [timed(device, target.copy_, source)[1] for _ in range(10)]
    return 2 * source.numel() * 4 / statistics.median(times) / 1e9


def run(ctx: Context) -> SectionResult:
    import torch
    from torch.nn.attention import SDPBackend

    from riskdpo.models.loading import native_bf16_support

    device = ctx.device
    facts = [
        ["nvidia-smi", nvidia_smi()],
        ["torch CUDA / cuDNN", f"{torch.version.cuda} / {torch.backends.cudnn.version() if ctx.cuda else '—'}"],
        ["device", torch.cuda.get_device_name() if ctx.cuda else "cpu"],
        ["compute capability", str(torch.cuda.get_device_capability()) if ctx.cuda else "—"],
        ["bf16 supported (torch / riskdpo native_bf16_support)",
         f"{torch.cuda.is_bf16_supported() if ctx.cuda else False} / {native_bf16_support()}"],
        ["SDPA enabled: flash / mem-efficient / cuDNN / math",
         f"{torch.backends.cuda.flash_sdp_enabled()} / {torch.backends.cuda.mem_efficient_sdp_enabled()} / "
         f"{torch.backends.cuda.cudnn_sdp_enabled()} / {torch.backends.cuda.math_sdp_enabled()}"],
    ]
    n = 8192 if ctx.cuda else 512
    tflops, gbps = matmul_tflops(device, n), copy_gbps(device, 1024 if ctx.cuda else 64)
    facts += [[f"bf16 matmul {n}^3, median of 10", f"{tflops:.1f} TFLOP/s"], ["device copy, median of 10", f"{gbps:.0f} GB/s"]]
    versions = [[name, version(name)] for name in PACKAGES]
    backends = [SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION, SDPBackend.CUDNN_ATTENTION, SDPBackend.MATH]
    probes = [probe_backend(b, d, m, device) for b in backends for d in (128, 80) for m in (False, True)]
    return SectionResult(
        section="environment",
        title="GPU suite: environment",
        description=__doc__.split("\n\n", 1)[1].strip(),
        tables=[
            Table("Machine", ["Item", "Value"], facts),
            Table("Packages", ["Package", "Version"], versions),
            Table("SDPA backends, each forced alone: bf16 forward+backward, batch 2, 8 heads, 256 tokens",
                  ["Backend", "Head dim", "Mask", "Runs", "Kernels (profiler) or error"], probes),
        ],
        raw={"matmul_tflops": tflops, "copy_gbps": gbps, "versions": dict(versions)},
    )
