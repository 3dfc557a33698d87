#!/usr/bin/python3
# api-client.py: runs INSIDE a workload's sandbox (the system tests copy it into the
# workload's data directory) and speaks Varlink to /run/osmose/api.sock, printing one
# JSON line per reply. Modes:
#   calls '[METHOD, PARAMS]'...     one call each, in order, on one connection
#   watch PATTERN N                 stream a watch; print each record, end after N or at the error
#   watches PATTERN N               open N watches on N connections; print each first reply or "open"
#   loop-put COLLECTION             put a record every 0.1 s for ever; print "ok" or the error and grant
#   burst N                         N Info calls back to back; print {"ok":…, "limited":…, "other":…}
#   flood SECONDS                   4 connections calling Info as fast as they can; print the count
#   fuzz SEED N                     N random or mutated messages; then check the socket still answers
#   connect PATH...                 try to connect to each path; print what happened
#   putbig COLLECTION SIZE N        N puts of SIZE-byte strings; print each result
#   publish TYPE PORT               publish a service, print the reply, then stay up (until stopped)
import json, os, random, socket, sys, threading, time

API = "/run/osmose/api.sock"


class Conn:
    def __init__(self, path=API):
        self.s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.s.connect(path)
        self.buf = b""

    def send(self, obj):
        self.s.sendall(json.dumps(obj).encode() + b"\0")

    def read(self):
        while b"\0" not in self.buf:
            d = self.s.recv(65536)
            if not d:
                return {"eof": True}
            self.buf += d
        msg, self.buf = self.buf.split(b"\0", 1)
        return json.loads(msg)

    def call(self, method, params=None, more=False):
        m = {"method": method, "parameters": params or {}}
        if more:
            m["more"] = True
        self.send(m)
        return self.read()


def out(obj):
    print(json.dumps(obj), flush=True)


def short(r):
    if "error" in r:
        return {"error": r["error"], "grant": r.get("parameters", {}).get("grant")}
    return {"ok": True}


def main():
    mode, args = sys.argv[1], sys.argv[2:]
    if mode == "calls":
        c = Conn()
        for a in args:
            m = json.loads(a)
            out(c.call(m[0], m[1] if len(m) > 1 else {}))
    elif mode == "watch":
        c = Conn()
        c.send({"method": "io.osmose.Api.Watch", "parameters": {"pattern": args[0]}, "more": True})
        print("watching", flush=True)
        for _ in range(int(args[1])):
            r = c.read()
            out(r)
            if "error" in r or r.get("eof"):
                break
    elif mode == "watches":
        conns = []
        for i in range(int(args[1])):
            c = Conn()
            c.send({"method": "io.osmose.Api.Watch", "parameters": {"pattern": args[0]}, "more": True})
            c.s.settimeout(1.0)
            try:
                out(c.read())
            except socket.timeout:
                out({"open": True})
            conns.append(c)
    elif mode == "loop-put":
        c = Conn()
        i = 0
        while True:
            r = c.call("io.osmose.Api.Put", {"collection": args[0], "body": {"i": i}})
            out(short(r))
            i += 1
            time.sleep(0.1)
    elif mode == "burst":
        c = Conn()
        counts = {"ok": 0, "limited": 0, "other": 0}
        for _ in range(int(args[0])):
            r = c.call("io.osmose.Api.Info")
            if "error" not in r:
                counts["ok"] += 1
            elif r["error"] == "io.osmose.Api.RateLimited":
                counts["limited"] += 1
            else:
                counts["other"] += 1
        out(counts)
    elif mode == "flood":
        end = time.time() + float(args[0])
        n = [0] * 4

        def run(k):
            c = Conn()
            while time.time() < end:
                c.call("io.osmose.Api.Info")
                n[k] += 1
        ts = [threading.Thread(target=run, args=(k,)) for k in range(4)]
        for t in ts:
            t.start()
        print("flooding", flush=True)
        for t in ts:
            t.join()
        out({"calls": sum(n)})
    elif mode == "fuzz":
        fuzz(int(args[0]), int(args[1]))
    elif mode == "connect":
        for p in args:
            try:
                s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                s.connect(p)
                out({"path": p, "connected": True})
            except OSError as e:
                out({"path": p, "connected": False, "error": e.strerror})
    elif mode == "publish":
        c = Conn()
        out(c.call("io.osmose.Api.Publish", {"type": args[0], "port": int(args[1])}))
        out(c.call("io.osmose.Api.Publications"))
        while True:
            time.sleep(1)
    elif mode == "putbig":
        c = Conn()
        for _ in range(int(args[2])):
            r = c.call("io.osmose.Api.Put", {"collection": args[0], "body": {"x": "y" * int(args[1])}})
            out(r.get("error", "ok") if "error" in r else "ok")


METHODS = ["Info", "Put", "PutBatch", "Query", "Collections", "Watch", "Services", "Publish", "Withdraw",
           "Publications", "Nope"]
VALUES = [None, True, 0, -1, 2**63, 1.5, "", "sensors/*", "sensors/../secret", "rooms/summary", "*", "a" * 300,
          "sensors/temp", "_http._tcp", "\u00e9", [], [{}], {}, {"a": 1}, [1, 2], "x/" * 70]
KEYS = ["collection", "body", "records", "pattern", "type", "port", "name", "txt", "id", "since", "until",
        "limit", "cursor", "reverse", "time", "extra"]


def rand_value(rnd, depth=0):
    if depth < 2 and rnd.random() < 0.2:
        return {rnd.choice(KEYS): rand_value(rnd, depth + 1) for _ in range(rnd.randint(0, 3))}
    if depth < 2 and rnd.random() < 0.1:
        return [rand_value(rnd, depth + 1) for _ in range(rnd.randint(0, 3))]
    return rnd.choice(VALUES)


def fuzz(seed, n):
    rnd = random.Random(seed)
    c = Conn()
    stats = {"replies": 0, "errors": {}, "reconnects": 0}
    for i in range(n):
        if rnd.random() < 0.05:
            # raw garbage or a broken frame: the daemon may close this connection
            raw = bytes(rnd.getrandbits(8) for _ in range(rnd.randint(1, 64)))
            try:
                c.s.sendall(raw + b"\0")
                c.s.settimeout(2)
                c.read()
            except OSError:
                pass
            c = Conn()
            stats["reconnects"] += 1
            continue
        params = {rnd.choice(KEYS): rand_value(rnd) for _ in range(rnd.randint(0, 4))}
        method = "io.osmose.Api." + rnd.choice(METHODS)
        more = rnd.random() < 0.1
        try:
            c.send({"method": method, "parameters": params, **({"more": True} if more else {})})
            c.s.settimeout(0.3 if more else 5)
            r = c.read()
        except socket.timeout:
            c = Conn()     # a watch that streams nothing: leave it
            stats["reconnects"] += 1
            continue
        except OSError:
            c = Conn()
            stats["reconnects"] += 1
            continue
        if r.get("eof"):
            c = Conn()
            stats["reconnects"] += 1
            continue
        stats["replies"] += 1
        e = r.get("error", "ok")
        stats["errors"][e] = stats["errors"].get(e, 0) + 1
        if e == "io.osmose.Api.RateLimited":
            time.sleep(r["parameters"]["retry_after"] / 1000.0)
    r = Conn().call("io.osmose.Api.Info")
    stats["alive"] = "error" not in r
    out(stats)


main()
