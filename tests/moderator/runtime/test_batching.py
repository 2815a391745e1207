from hypothesis import given
from hypothesis import strategies as st

from moderator.runtime.batching import padded_tokens, plan_batches


def test_sorted_batches_cap_padded_tokens() -> None:
    lengths = [5, 100, 6, 7, 90, 8]
    batches = plan_batches(lengths, max_tokens=200, max_rows=64)
    for batch in batches:
        assert len(batch) * max(lengths[i] for i in batch) <= 200
    assert sorted(i for b in batches for i in b) == list(range(len(lengths)))
    # the short texts travel together instead of being padded to 100
    assert padded_tokens(lengths, batches) < len(lengths) * 100


def test_one_overlong_row_gets_its_own_batch() -> None:
    batches = plan_batches([10, 5000, 10], max_tokens=100, max_rows=8)
    assert [5000] in [[[10, 5000, 10][i] for i in b] for b in batches]


@given(
    st.lists(st.integers(min_value=0, max_value=600), max_size=200), st.integers(1, 4096), st.integers(1, 64)
)
def test_every_index_exactly_once_and_limits_hold(lengths: list[int], max_tokens: int, max_rows: int) -> None:
    batches = plan_batches(lengths, max_tokens, max_rows)
    assert sorted(i for b in batches for i in b) == list(range(len(lengths)))
    for b in batches:
        assert 1 <= len(b) <= max_rows
        if len(b) > 1:
            assert len(b) * max(max(lengths[i] for i in b), 1) <= max_tokens
