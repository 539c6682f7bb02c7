"""What redacting one large string costs: `redact` must be linear in its input, so that a tool
argument or result of megabytes cannot stall a run.

    python -m benchmarks.redaction [--size 1000000] [--repeat 5] [--bound-ms 100]

Times `redact` on `--size` characters of each of: one run of letters, one run of digits, prose
(words and spaces with emails, phone numbers, dates and amounts among them) and base64. Prints
the best of `--repeat` calls per input, in milliseconds, and exits 1 when one is over
`--bound-ms`. The bound does not scale with `--size`: at a smaller size it is looser, and still
far below what a quadratic pattern takes (a second for 40,000 letters).
"""

from __future__ import annotations

import argparse
import base64
import random
import sys
import time
from collections.abc import Callable

from plangate import redact

WORDS = (
    *("the", "order", "was", "shipped", "to", "our", "customer", "on", "time", "please"),
    *("review", "invoice", "number", "total", "amount", "renewal", "due", "next", "week"),
    *("with", "the", "team", "and", "send", "a", "short", "note", "about", "it", "before"),
)


def letters(size: int, _: random.Random) -> str:
    return "a" * size


def digits(size: int, rnd: random.Random) -> str:
    return "".join(rnd.choices("0123456789", k=size))


def prose(size: int, rnd: random.Random) -> str:
    """Words and spaces; one token in 40 is PII to redact (an email or a phone number), one in
    40 a look-alike to keep (a date, an amount, an order number)."""
    pii = (
        lambda: f"ana.lopez{rnd.randrange(1000)}@acme.example",
        lambda: f"+1 415 555 {rnd.randrange(10_000):04d}",
        lambda: f"(415) 555-{rnd.randrange(10_000):04d}",
    )
    kept = (
        lambda: f"2026-03-{rnd.randrange(1, 32):02d}",
        lambda: f"{rnd.randrange(100, 100_000)} USD",
        lambda: f"#{rnd.randrange(10**8, 10**9)}",
    )
    parts: list[str] = []
    length = 0
    while length < size:
        roll = rnd.random()
        if roll < 1 / 40:
            part = rnd.choice(pii)()
        elif roll < 2 / 40:
            part = rnd.choice(kept)()
        else:
            part = rnd.choice(WORDS)
        parts.append(part)
        length += len(part) + 1
    return " ".join(parts)[:size]


def base64_text(size: int, rnd: random.Random) -> str:
    return base64.b64encode(rnd.randbytes(size * 3 // 4 + 3)).decode()[:size]


INPUTS: dict[str, Callable[[int, random.Random], str]] = {
    "letters": letters,
    "digits": digits,
    "prose": prose,
    "base64": base64_text,
}


def best_ms(text: str, repeat: int) -> float:
    seconds = []
    for _ in range(repeat):
        started = time.perf_counter()
        redact(text)
        seconds.append(time.perf_counter() - started)
    return min(seconds) * 1000


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.redaction", description=__doc__)
    parser.add_argument("--size", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--bound-ms", type=float, default=100.0)
    args = parser.parse_args(argv)

    print(f"| input ({args.size:,} characters) | redact ms, best of {args.repeat} | within |")
    print("|---|---:|---|")
    missed = []
    for name, make in INPUTS.items():
        text = make(args.size, random.Random(name))
        ms = best_ms(text, args.repeat)
        if ms > args.bound_ms:
            missed.append(name)
        print(f"| {name} | {ms:.1f} | {'no' if ms > args.bound_ms else 'yes'} |", flush=True)
    # The prose's PII is really redacted, and only it: the time above is the time of real work.
    sample = redact(prose(10_000, random.Random(0)))
    for leak in ("@", "+1 415", "(415)"):
        if leak in sample:
            raise SystemExit(f"the prose still holds {leak!r} after redaction")
    for kept in ("2026-03-", " USD", "#"):
        if kept not in sample:
            raise SystemExit(f"the prose lost every {kept!r} to redaction")
    if missed:
        print(f"\nOver {args.bound_ms:g} ms: {', '.join(missed)}.")
        raise SystemExit(1)
    print(f"\nEvery input under {args.bound_ms:g} ms.")


if __name__ == "__main__":
    main(sys.argv[1:])
