"""Host side of the needle pen: the Pen API and the penctl CLI.

``from host import Pen``"""

from host.link import LinkError, PenRefused
from host.pen import Pen

__all__ = ["Pen", "LinkError", "PenRefused"]
