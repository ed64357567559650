"""Single-writer profiling across processes: rank 0 profiles, every rank gets the same ω."""
from typing import Callable

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


def run_on_master_and_share(make_profile: Callable[[], Profile]) -> Profile:
    """Run ``make_profile`` on rank 0 only and broadcast its result (or its error) to every rank.

    Every rank then applies the very same floats, so ω is identical everywhere, bit for bit.
    """
    if not _active():
        return make_profile()
    payload, failure = [None], None
    if dist.get_rank() == 0:
        try:
            payload[0] = {"profile": make_profile().to_dict()}
        except Exception as e:  # tell the other ranks instead of leaving them waiting
            failure = e
            payload[0] = {"error": str(e) if isinstance(e, AdminError) else f"rank 0 failed to profile: {e!r}"}
    dist.broadcast_object_list(payload, src=0)
    if failure is not None:
        raise failure
    if "error" in payload[0]:
        raise AdminError(payload[0]["error"])
    return profile_from_dict(payload[0]["profile"], "<broadcast from rank 0>")
