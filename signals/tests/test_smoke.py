import pytest


@pytest.mark.django_db
def test_it_creates_a_signal_with_an_open_outcome(signal_factory):
    signal = signal_factory()
    assert signal.id > 0
    assert signal.outcome.status == "open"
