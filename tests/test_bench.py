"""`make bench` runs end to end (quick mode: short lengths, no file written); no timing is
asserted here, the tables are for reading (see the appendix)."""

from ssmax import bench
from ssmax.attention import QueryScale


def test_quick_benchmark_prints_every_table(capsys):
    assert bench.main(["--quick", "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert "attention layer, forward + backward" in out
    for impl in bench.IMPLS:
        assert impl in out
    assert "softmax" in out and "ssmax" in out and "tokens/s" in out


def test_explicit_and_fused_attention_agree():
    import torch

    gen = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(1, 2, 64, 8, generator=gen) for _ in range(3))
    s = QueryScale("ssmax", n_head=2, s_init=0.3)
    with torch.no_grad():
        s.s.copy_(torch.tensor([0.3, 0.5]))
    fused = bench.attention(q, k, v, s, "ssmax_fused")
    explicit = bench.attention(q, k, v, s, "ssmax_explicit")
    assert torch.allclose(fused, explicit, atol=1e-5)
    assert not torch.allclose(fused, bench.attention(q, k, v, s, "softmax"), atol=1e-3)
