#!/usr/bin/python3
"""IMAP benchmarks for securemail-proxy against the same Dovecot, one run.

fetch:    UID FETCH of N messages of SIZE bytes, direct to Dovecot (IMAPS)
          vs through the proxy (plain on loopback, IMAPS upstream: one TLS hop
          each way), best of ROUNDS; prints the wall-time ratio.
sessions: COUNT concurrent logged-in idle sessions through the proxy;
          prints the proxy's RSS growth per session.
Run by bench/run.sh, which starts the stack, the keyring and the proxy.
"""
import argparse, imaplib, os, ssl, sys, time

def direct(args):
    ctx = ssl.create_default_context(cafile=args.ca)
    m = imaplib.IMAP4_SSL("localhost", args.imaps_port, ssl_context=ctx, timeout=args.timeout)
    m.login(args.user, "pass")
    return m

def direct_plain(args):
    m = imaplib.IMAP4("127.0.0.1", args.imap_port, timeout=args.timeout)
    m.login(args.user, "pass")
    return m

def via_proxy(args):
    m = imaplib.IMAP4("127.0.0.1", args.proxy_port, timeout=args.timeout)
    m.login(args.address, args.local_password)
    return m

def populate(args):
    m = direct(args)
    typ, d = m.select("INBOX")
    have = int(d[0])
    if have >= args.count:
        m.logout()
        return
    line = (b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ-_" + b"\r\n")
    body = line * (args.size // len(line))
    for i in range(have, args.count):
        msg = (b"From: carol@example.test\r\nTo: %s\r\nSubject: bench %d\r\n\r\n" % (args.address.encode(), i)) + body
        m.append("INBOX", None, None, msg)
    m.logout()

def fetch_all(m, batch):
    m.select("INBOX", readonly=True)
    typ, d = m.uid("SEARCH", None, "ALL")
    uids = d[0].split()
    total = 0
    for i in range(0, len(uids), batch):
        chunk = b",".join(uids[i:i + batch]).decode()
        typ, d = m.uid("FETCH", chunk, "(BODY.PEEK[])")
        for part in d:
            if isinstance(part, tuple):
                total += len(part[1])
    return total

def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

def bench_fetch(args):
    populate(args)
    results = {"direct": [], "plain": [], "proxy": []}
    sizes = {}
    proxy_cpu = []
    for r in range(args.rounds):
        for name, connect in (("direct", direct), ("plain", direct_plain), ("proxy", via_proxy)):
            m = connect(args)
            c0 = cpu_seconds(args.proxy_pid) if args.proxy_pid else 0
            t0 = time.perf_counter()
            sizes[name] = fetch_all(m, args.batch)
            results[name].append(time.perf_counter() - t0)
            if name == "proxy" and args.proxy_pid:
                proxy_cpu.append(cpu_seconds(args.proxy_pid) - c0)
            m.logout()
    assert sizes["direct"] == sizes["proxy"] == sizes["plain"], sizes
    d, p, pl = min(results["direct"]), min(results["proxy"]), min(results["plain"])
    print(f"fetch: {args.count} messages x {args.size} bytes ({sizes['direct'] / 1e6:.1f} MB), best of {args.rounds}")
    print(f"  direct to Dovecot (IMAPS):      {d:.3f} s   all runs: {' '.join(f'{x:.3f}' for x in results['direct'])}")
    print(f"  direct to Dovecot (plain IMAP): {pl:.3f} s   all runs: {' '.join(f'{x:.3f}' for x in results['plain'])}")
    print(f"  through securemail-proxy:       {p:.3f} s   all runs: {' '.join(f'{x:.3f}' for x in results['proxy'])}")
    if proxy_cpu:
        print(f"  proxy CPU time per proxied run: {' '.join(f'{x:.2f}' for x in proxy_cpu)} s")
    print(f"  ratio proxy/direct (IMAPS, what a client would otherwise use): {p / d:.3f}  (target <= 1.10)")
    print(f"  ratio proxy/direct plain IMAP (relay overhead alone, no TLS on the baseline): {p / pl:.3f}")

def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS")

def bench_sessions(args):
    warm = [via_proxy(args) for _ in range(2)]
    for m in warm:
        m.select("INBOX")
    time.sleep(0.5)
    before = rss_kib(args.proxy_pid)
    sessions = []
    for i in range(args.sessions):
        m = via_proxy(args)
        m.select("INBOX")
        sessions.append(m)
    time.sleep(1.0)
    after = rss_kib(args.proxy_pid)
    for m in sessions:
        m.noop()   # all still alive
    per = (after - before) / args.sessions
    print(f"sessions: {args.sessions} concurrent logged-in idle IMAP sessions through the proxy")
    print(f"  proxy RSS before: {before} KiB, after: {after} KiB")
    print(f"  RSS per session: {per:.1f} KiB  (target < 64 KiB)")
    for m in sessions + warm:
        m.logout()

def main():
    p = argparse.ArgumentParser()
    p.add_argument("what", choices=["fetch", "sessions"])
    p.add_argument("--proxy-port", type=int, required=True)
    p.add_argument("--proxy-pid", type=int)
    p.add_argument("--imaps-port", type=int, required=True)
    p.add_argument("--imap-port", type=int, required=True)
    p.add_argument("--ca", required=True)
    p.add_argument("--user", default="carol")
    p.add_argument("--address", default="carol@example.test")
    p.add_argument("--local-password", required=True)
    p.add_argument("--count", type=int, default=2000)
    p.add_argument("--size", type=int, default=50 * 1024)
    p.add_argument("--batch", type=int, default=100)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--sessions", type=int, default=200)
    p.add_argument("--timeout", type=float, default=60, help="seconds before a stalled read fails the run")
    args = p.parse_args()
    args.proxy_pid = args.proxy_pid
    if args.what == "fetch":
        bench_fetch(args)
    else:
        bench_sessions(args)

if __name__ == "__main__":
    main()
