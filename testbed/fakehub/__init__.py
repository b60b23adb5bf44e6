"""A local stand-in for the Hugging Face Hub's HTTP API: tests and `hubscan demo` run the real client against it."""

from .faults import Fault
from .server import FakeHub
from .traffic import RequestLog, RequestRecord

__all__ = ["FakeHub", "Fault", "RequestLog", "RequestRecord"]
