import pytest

from engine.stack import Stack
from tests.tiny import make_stack


@pytest.fixture
def stack() -> Stack:
    return make_stack(2)
