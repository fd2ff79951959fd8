# Protocol commands that are seldom sent (limits, config, help,
# clear-fault): imported for one command and dropped after
# (pen.compat.lazy), so their code is not on the heap between commands.
# Each takes the Protocol and the argument words.
from pen import errors as E
from pen import limits as L


class _Values:
    """Attribute bag for validating a whole configuration before applying it."""


def cmd_limits(p, args):
    if not args:
        return p._pairs(L.CLINIC, None)
    if args[0] != "set" or len(args) != 3:
        raise E.PenError(E.BAD_ARGUMENTS, "usage: limits [set KEY VALUE]")
    if not p.is_authorized():
        raise E.PenError(E.AUTH_REQUIRED, "changing clinic limits needs an authenticated technician")
    s = L.find(L.CLINIC, args[1])
    value = s.parse(args[2])
    s.check_hw(value)
    _check_order(p, s, value, p.core.cfg)
    p.configure({s.key: value})
    return "%s=%s" % (s.key, s.show(value))


def _check_order(p, clinic_setting, cap, values):
    # a clinic limit may not fall below a working setting it caps
    for w in L.WORKING:
        if w.clinic_key == clinic_setting.key and getattr(values, w.key) > cap:
            raise E.PenError(
                E.LIMIT_ORDER,
                "%s %s %s below working %s %s %s; lower %s first"
                % (
                    clinic_setting.key,
                    clinic_setting.show(cap),
                    clinic_setting.unit,
                    w.key,
                    w.show(getattr(values, w.key)),
                    w.unit,
                    w.key,
                ),
            )


def cmd_config(p, args):
    if not args:
        return p._pairs(L.CLINIC + L.WORKING, None) + " hash=" + p.config_hash()
    if args[0] != "import" or len(args) < 2:
        raise E.PenError(E.BAD_ARGUMENTS, "usage: config [import KEY=VALUE ...]")
    cfg = p.core.cfg
    new = {}
    for word in args[1:]:
        eq = word.find("=")
        if eq <= 0:
            raise E.PenError(E.BAD_ARGUMENTS, "expected KEY=VALUE, got '%s'" % word[:24])
        key = word[:eq]
        if key in new:
            raise E.PenError(E.BAD_ARGUMENTS, "key '%s' given twice" % key[:24])
        s = L.find(L.CLINIC + L.WORKING, key)
        value = s.parse(word[eq + 1 :])
        s.check_hw(value)
        new[key] = value
    merged = _Values()
    for s in L.CLINIC + L.WORKING:
        setattr(merged, s.key, new[s.key] if s.key in new else getattr(cfg, s.key))
    for s in L.WORKING:
        L.check_working(s, getattr(merged, s.key), merged)
    clinic_changes = 0
    for s in L.CLINIC:
        if getattr(merged, s.key) != getattr(cfg, s.key):
            clinic_changes += 1
    if clinic_changes and not p.is_authorized():
        raise E.PenError(E.AUTH_REQUIRED, "importing changed clinic limits needs an authenticated technician")
    if getattr(merged, "depth") != cfg.depth and p._running():  # noqa: B009 - a bag of setting keys
        raise E.PenError(E.NOT_WHILE_RUNNING, "depth cannot change while the needles run")
    p.configure(new)
    return "applied=%d hash=%s" % (len(new), p.config_hash())


def cmd_clear_fault(p, args):
    p._no_args(args)
    if not p.core.clear_fault():
        raise E.PenError(E.FAULT_STILL_PRESENT, "the fault's cause is still present")
    return ""


def cmd_help(p, args):
    if args:
        entry = p.commands.get(args[0])
        if entry is None:
            raise E.PenError(E.UNKNOWN_COMMAND, "unknown command '%s'" % args[0][:24])
        return "usage: " + entry[2]
    return "commands=" + ",".join(sorted(p.commands))
