"""The pure math of ω against hand-computed values (spec sections 3, 4 and 7)."""
import math

import pytest

from fairseq_admin.omega import (
    OmegaRecursion,
    analytic_omega,
    branch_dependency,
    closed_form_omegas,
    deepnorm_constants,
    profiled_omegas,
    sublayer_names,
)


def test_analytic_logn_matches_admin_torch_examples():
    assert analytic_omega(12, "logn") == pytest.approx(2.017, abs=5e-4)
    assert analytic_omega(36, "logn") == pytest.approx(3.041, abs=5e-4)
    assert analytic_omega(12, "ones") == 1.0
    assert analytic_omega(16, "sqrtn") == 4.0
    with pytest.raises(ValueError):
        analytic_omega(0, "logn")
    with pytest.raises(ValueError):
        analytic_omega(4, "profile")


def test_recursion_by_hand():
    # ω1 = 1; c = sqrt(1 + 0.44) = 1.2; ω2 = 1.2; c = sqrt(1.44 + 0.25*... ) etc.
    omegas = profiled_omegas([(1.0, 0.44), (1.44, 0.81), (2.25, 0.0)])
    assert omegas == pytest.approx([1.0, 1.2, 1.5])
    rec = OmegaRecursion()
    assert rec.next_omega() == 1.0
    rec.update(3.0, 1.0)
    assert rec.next_omega() == 2.0


def test_closed_form_equals_recursion_when_inputs_have_unit_variance():
    # with LN outputs of variance 1, Var(ω_i r_i) = ω_i² (and Var(x_0) for the first sublayer)
    var_x0, branches = 1.3, [0.5, 0.2, 0.7, 0.1]
    omegas, pairs, c2 = [], [], None
    for i, vb in enumerate(branches):
        w = 1.0 if i == 0 else math.sqrt(c2)
        var_short = var_x0 * w * w if i == 0 else w * w
        pairs.append((var_short, vb))
        c2 = var_short + vb
        omegas.append(w)
    assert profiled_omegas(pairs) == pytest.approx(omegas)
    assert closed_form_omegas(var_x0, branches) == pytest.approx(omegas)


def test_closed_form_reaches_the_published_deep_profile_scale():
    # the 100L-100L WMT profile grows like sqrt(1 + 0.4 k): ≈ 8.8 at encoder sublayer 200
    omegas = closed_form_omegas(1.0, [0.4] * 200)
    assert omegas[-1] == pytest.approx(math.sqrt(1 + 0.4 * 199))
    assert 8.0 < omegas[-1] < 9.5


def test_deepnorm_constants_6_6():
    c = deepnorm_constants(6, 6)
    assert c["encoder_alpha"] == pytest.approx(1.418, abs=5e-4)
    assert c["encoder_beta"] == pytest.approx(0.497, abs=5e-4)
    assert c["decoder_alpha"] == pytest.approx(2.060, abs=5e-4)
    assert c["decoder_beta"] == pytest.approx(0.343, abs=5e-4)


def test_branch_dependency_and_names():
    assert branch_dependency(3.0, 1.0) == 0.25
    assert sublayer_names("encoder", 2) == [(0, "self_attn"), (0, "ffn"), (1, "self_attn"), (1, "ffn")]
    assert [k for _, k in sublayer_names("decoder", 1)] == ["self_attn", "encoder_attn", "ffn"]
