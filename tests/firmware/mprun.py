# Runs the test_* functions of the given test modules under MicroPython
# (or any Python): prints one line per test and "N passed, N failed".
# Test modules in tests/firmware use plain asserts so pytest runs them too.
import sys

ROOT = sys.argv[0].rsplit("/", 3)[0] if sys.argv[0].count("/") >= 3 else "../.."
sys.path.insert(0, ROOT + "/firmware")
sys.path.insert(0, ROOT + "/sim/device")
sys.path.insert(0, ROOT + "/tests/firmware")

passed = 0
failed = 0
for path in sys.argv[1:]:
    name = path.rsplit("/", 1)[-1][:-3]
    mod = __import__(name)
    for attr in sorted(dir(mod)):
        if not attr.startswith("test_"):
            continue
        fn = getattr(mod, attr)
        try:
            fn()
            passed += 1
            print("PASS", name, attr)
        except Exception as e:  # noqa: BLE001
            failed += 1
            print("FAIL", name, attr, repr(e))
            if hasattr(sys, "print_exception"):
                sys.print_exception(e)  # type: ignore[attr-defined]
print("%d passed, %d failed" % (passed, failed))
sys.exit(1 if failed else 0)
