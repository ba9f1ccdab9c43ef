#!/usr/bin/python3
"""SMTP submission benchmark for securemail-proxy, one run (issue 5).

Submits COUNT messages of SIZE bytes over one SMTP session, directly to the
provider's submission port (STARTTLS + AUTH, what a client would otherwise
do) and through the proxy (which signs each message, spools and fsyncs it
before its 250).  Prints submissions per second for both and the ratio.
"""
import argparse, smtplib, ssl, time

def message(i, size, sender):
    line = b"SecureMail submission benchmark, line of sixty-four bytes.....\r\n"
    body = line * (size // len(line))
    return (b"From: %s\r\nTo: bob@example.test\r\nSubject: smtp bench %d\r\n\r\n" % (sender.encode(), i)) + body

def run(connect, args, sender):
    s = connect()
    t0 = time.perf_counter()
    for i in range(args.count):
        s.sendmail(sender, ["bob@example.test"], message(i, args.size, sender))
    elapsed = time.perf_counter() - t0
    s.quit()
    return elapsed

def main():
    p = argparse.ArgumentParser()
    p.add_argument("--proxy-port", type=int, required=True)
    p.add_argument("--submission-port", type=int, required=True)
    p.add_argument("--ca", required=True)
    p.add_argument("--local-password", required=True)
    p.add_argument("--address", default="carol@example.test")
    p.add_argument("--user", default="carol")
    p.add_argument("--count", type=int, default=100)
    p.add_argument("--size", type=int, default=10 * 1024)
    args = p.parse_args()

    def direct():
        s = smtplib.SMTP("localhost", args.submission_port, timeout=60)
        s.starttls(context=ssl.create_default_context(cafile=args.ca))
        s.login(args.user, "pass")
        return s

    def proxy():
        s = smtplib.SMTP("127.0.0.1", args.proxy_port, timeout=60)
        s.login(args.address, args.local_password)
        return s

    d = run(direct, args, args.address)
    pr = run(proxy, args, args.address)
    print(f"smtp: {args.count} submissions of {args.size} bytes over one session")
    print(f"  direct to Postfix submission (STARTTLS+AUTH): {args.count / d:7.1f} msg/s  ({d:.2f} s)")
    print(f"  through securemail-proxy (sign + spool fsync): {args.count / pr:7.1f} msg/s  ({pr:.2f} s)")
    print(f"  ratio proxy/direct throughput: {d / pr:.3f}  (the proxy signs and fsyncs each message before 250)")

if __name__ == "__main__":
    main()
