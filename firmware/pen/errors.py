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

# code -> short name; the long text of each reply names the limit involved
NAMES = {
    UNKNOWN_COMMAND: "unknown_command",
    BAD_ARGUMENTS: "bad_arguments",
    BAD_NUMBER: "bad_number",
    UNKNOWN_KEY: "unknown_key",
    HARDWARE_LIMIT: "hardware_limit",
    CLINIC_LIMIT: "clinic_limit",
    RESOLUTION: "resolution",
    LIMIT_ORDER: "limit_order",
    LINE_TOO_LONG: "line_too_long",
    BAD_BYTES: "bad_bytes",
    BAD_CHECK: "bad_check",
    LINE_TIMEOUT: "line_timeout",
    NOT_WHILE_RUNNING: "not_while_running",
    NOT_ALLOWED_IN_STATE: "not_allowed_in_state",
    FAULT_STILL_PRESENT: "fault_still_present",
    AUTH_REQUIRED: "auth_required",
    AUTH_FAILED: "auth_failed",
    AUTH_LOCKED: "auth_locked",
    STORAGE: "storage",
    INTERNAL: "internal",
}


class PenError(Exception):
    """A refused request: code from this table plus a text naming the limit."""

    def __init__(self, code, text):
        super().__init__(text)
        self.code = code
        self.text = text
