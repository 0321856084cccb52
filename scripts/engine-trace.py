#!/usr/bin/env python3
"""Count and time a command's engine round trips (issue #20's profiling tool).

A logging proxy for an engine socket: one line per HTTP request (ms since start,
connection number, method, path) and per response (status, ms since its request).
Hijacked exec/attach streams pass through (half-closes are forwarded).

  scripts/engine-trace.py /tmp/t.sock /var/run/docker.sock /tmp/t.log &
  pgbox --engine unix:///tmp/t.sock status; cat /tmp/t.log
"""
import asyncio, sys, time, re
listen, target, log = sys.argv[1], sys.argv[2], open(sys.argv[3], 'a', buffering=1)
t0 = time.monotonic()
M = re.compile(rb'^(GET|POST|PUT|DELETE|HEAD) (\S+) HTTP/1\.[01]\r\n')
async def pipe(r, w, tag, state):
    try:
        while True:
            b = await r.read(65536)
            if not b: break
            if tag == 'C':
                m = M.match(b)
                if m:
                    state['t'] = time.monotonic()
                    log.write(f"{(state['t']-t0)*1000:9.1f} {state['cid']} > {m.group(1).decode()} {m.group(2).decode()}\n")
            else:
                if b.startswith(b'HTTP/1.'):
                    log.write(f"{(time.monotonic()-t0)*1000:9.1f} {state['cid']} < {b[9:12].decode()} +{(time.monotonic()-state.get('t',t0))*1000:.1f}ms\n")
            w.write(b); await w.drain()
    except Exception: pass
    finally:
        try:
            if w.can_write_eof(): w.write_eof()
            else: w.close()
        except Exception: pass
n = 0
async def handle(cr, cw):
    global n; n += 1
    sr, sw = await asyncio.open_unix_connection(target)
    st = {'cid': n}
    await asyncio.gather(pipe(cr, sw, 'C', st), pipe(sr, cw, 'S', st))
async def main():
    srv = await asyncio.start_unix_server(handle, path=listen)
    async with srv: await srv.serve_forever()
asyncio.run(main())
