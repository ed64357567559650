"""Single-writer profiling across processes: rank 0 profiles, every rank gets the same ω."""
from typing import Any, Callable, Dict

import torch.distributed as dist

from .errors import AdminError
from .profile_file import Profile, profile_from_dict


def _active() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def world_size() -> int:
    return dist.get_world_size() if _active() else 1


def is_master() -> bool:
    return not _active() or dist.get_rank() == 0


def barrier() -> None:
    if _active():
        dist.barrier()


def decide_on_master(decide: Callable[[], Dict[str, Any]]) -> Dict[str, Any]:
    """Run ``decide`` on rank 0 only and broadcast its result (a dict of plain values) or its error to
    every rank, so that no rank decides from its own disk (several machines need not share one)."""
    if not _active():
        return decide()
    payload, failure = [None], None
    if dist.get_rank() == 0:
        try:
            payload[0] = {"result": decide()}
        except Exception as e:  # tell the other ranks instead of leaving them waiting
            failure = e
            payload[0] = {"error": str(e) if isinstance(e, AdminError) else f"rank 0 failed to profile: {e!r}"}
    dist.broadcast_object_list(payload, src=0)
    if failure is not None:
        raise failure
    if "error" in payload[0]:
        raise AdminError(payload[0]["error"])
    return payload[0]["result"]


def run_on_master_and_share(make_profile: Callable[[], Profile]) -> Profile:
    """Run ``make_profile`` on rank 0 only and give every rank the very same floats (ω identical
    everywhere, bit for bit)."""
    shared = decide_on_master(lambda: {"profile": make_profile().to_dict()})
    return profile_from_dict(shared["profile"], "<broadcast from rank 0>")
