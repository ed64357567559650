"""Plots of Admin diagnostics (matplotlib, headless): ω and β² per sublayer."""
from ..files import atomic_write
from ..profile_file import Profile


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def save_figure(fig, path: str) -> None:
    """Save a figure atomically as PNG."""
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=120, bbox_inches="tight"))


def plot_profile(profile: Profile, path: str, title: str = "") -> None:
    """ω (left) and β² = dependency on the branch (right) against sublayer index, per stack."""
    plt = _pyplot()
    fig, (ax_w, ax_b) = plt.subplots(1, 2, figsize=(10, 3.8))
    for stack, marker in (("encoder", "o"), ("decoder", "s")):
        subs = profile.stack(stack).sublayers
        xs = list(range(1, len(subs) + 1))
        ax_w.plot(xs, [s.omega for s in subs], marker=marker, ms=3, label=stack)
        betas = [s.beta2 for s in subs]
        if all(b is not None for b in betas):
            ax_b.plot(xs, betas, marker=marker, ms=3, label=stack)
    ax_w.set(xlabel="sublayer (forward order)", ylabel="ω", title="shortcut scale ω")
    ax_b.set(xlabel="sublayer (forward order)", ylabel="β² = Var(F) / Var(ω·r + F)",
             title="dependency on the branch")
    for ax in (ax_w, ax_b):
        ax.grid(alpha=0.3)
        ax.legend()
    if title:
        fig.suptitle(title)
    save_figure(fig, path)
    plt.close(fig)
