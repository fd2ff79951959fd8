# Numbered error codes of the serial protocol. The table is published in
# docs/protocol.md and host/errors.json; tests keep the three in step.
# Codes never change meaning once released; new ones are appended.

OK = 0
UNKNOWN_COMMAND = 1
BAD_ARGUMENTS = 2
BAD_NUMBER = 3
UNKNOWN_KEY = 4
HARDWARE_LIMIT = 10
CLINIC_LIMIT = 11
RESOLUTION = 12
LIMIT_ORDER = 13
LINE_TOO_LONG = 20
BAD_BYTES = 21
BAD_CHECK = 22
LINE_TIMEOUT = 23
NOT_WHILE_RUNNING = 30
NOT_ALLOWED_IN_STATE = 31
FAULT_STILL_PRESENT = 32
AUTH_REQUIRED = 40
AUTH_FAILED = 41
AUTH_LOCKED = 42
STORAGE = 50
INTERNAL = 90

# code -> short name (the constant's name in lower case); the long text of
# each reply names the limit involved
NAMES = {v: k.lower() for k, v in globals().items() if type(v) is int and k != "OK"}


class PenError(Exception):
    """A refused request: code from this table plus a text naming the limit."""

    def __init__(self, code, text):
        super().__init__(text)
        self.code = code
        self.text = text
