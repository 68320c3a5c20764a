"""`make bench` runs end to end (quick mode: short lengths, no file written); no timing is
asserted here, the tables are for reading (see the appendix)."""

import json

import pytest
import torch

from ssmax import bench


def test_quick_benchmark_prints_every_table(capsys):
    assert bench.main(["--quick", "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert "attention layer (RoPE on q and k, then attention), forward + backward" in out
    for impl in bench.IMPLS:
        assert impl in out
    assert "softmax" in out and "ssmax" in out and "tokens/s" in out
    assert "KV-cache decoding" in out and "torch.compile: not measured" in out


def _layer_inputs(T: int = 64) -> bench.LayerInputs:
    inputs = bench.LayerInputs(T, torch.device("cpu"), heads=2, head_dim=8)
    with torch.no_grad():
        inputs.scale.s.copy_(torch.tensor([0.3, 0.5]))
    return inputs


def test_every_ssmax_row_computes_the_same_attention():
    inputs = _layer_inputs()
    fused = bench.attention(inputs, "ssmax_fused")
    assert torch.equal(fused, bench.attention(inputs, "ssmax_frozen_s"))  # the same forward, no gradient for s
    assert torch.allclose(fused, bench.attention(inputs, "ssmax_explicit"), atol=1e-5)
    assert not torch.allclose(fused, bench.attention(inputs, "softmax"), atol=1e-3)


def test_the_peer_package_uses_the_row_length_as_n_under_a_causal_mask():
    """`scalable_softmax` multiplies every row's logits by s log T (T the row length, masked
    entries included); ours by s log(i + 1), the keys query i sees. With one s for every head
    the two agree on the last row only."""
    pytest.importorskip("scalable_softmax")
    inputs = _layer_inputs(T=64)
    with torch.no_grad():
        inputs.scale.s.fill_(0.4)
        inputs.peer.s.fill_(0.4)
    peer, ours = bench.attention(inputs, "scalable_softmax"), bench.attention(inputs, "ssmax_fused")
    assert torch.allclose(peer[:, :, -1], ours[:, :, -1], atol=1e-5)
    assert not torch.allclose(peer[:, :, 1:-1], ours[:, :, 1:-1], atol=1e-3)


def test_the_stored_benchmark_prints_its_tables():
    stored = bench.load_benchmark("cpu")
    text = bench.format_tables(stored)  # an older file without the newer sections still prints
    assert "attention layer" in text and "training at the cpu profile's model" in text
    json.dumps(stored)
