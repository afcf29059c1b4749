#!/usr/bin/env python3
"""The module graph of src/ points one way: no two files, and no two stages, use each other.

Reads every `crate::…` and `super::…` path of each file under src/ (comments and unit tests
left out) and fails, naming them, on a cycle between two files or between two stages
(top-level modules; `error::kind` and `daemon::settings` are leaves of their own). The data
flows sources → store → query → judge → runs → sinks; `api`, `daemon` and `config` gather.

    python3 scripts/check_module_graph.py [--files]   # --files: print every file's uses
"""
import re, os, sys, itertools
root=os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'src')
files={}
for dp,_,fs in os.walk(root):
    for f in fs:
        if f.endswith('.rs'):
            p=os.path.join(dp,f); rel=os.path.relpath(p,root)[:-3]
            mod=rel.replace('/','::')
            if mod in ('lib','main'): continue
            files[mod]=open(p).read()
mods=set(files)
def resolve(path, cur):
    # crate::a::b::c -> longest module prefix present
    parts=path.split('::')
    for k in range(len(parts),0,-1):
        cand='::'.join(parts[:k])
        if cand in mods: return cand
    return None
edges={m:set() for m in mods}
for m,src in files.items():
    body=re.sub(r'#\[cfg\(test\)\]\s*mod tests \{.*','',src,flags=re.S)
    body=re.sub(r'//[^\n]*','',body)
    for mm in re.finditer(r'crate::([a-z_]+(?:::[a-z_]+)*)', body):
        t=resolve(mm.group(1), m)
        if t and t!=m and not t.startswith(m+'::') and not m.startswith(t+'::'): edges[m].add(t)
    parent=m.rsplit('::',1)[0] if '::' in m else None
    for mm in re.finditer(r'\bsuper::([a-z_]+)', body):
        if parent is None: continue
        t=resolve(parent+'::'+mm.group(1), m) if parent else None
        if t and t!=m and not m.startswith(t+'::'): edges[m].add(t)
# cycles between top-level stages (collapse submodules)
LEAVES=('error::kind','daemon::settings')
top=lambda m: next((l for l in LEAVES if m==l or m.startswith(l+'::')), m.split('::')[0])
tedges={}
for a,bs in edges.items():
    for b in bs:
        if top(a)!=top(b): tedges.setdefault(top(a),set()).add(top(b))
cyc=[]
for a in tedges:
    for b in tedges[a]:
        if a in tedges.get(b,()) and a<b: cyc.append((a,b))
# file-level 2-cycles
fcyc=[(a,b) for a in edges for b in edges[a] if a in edges.get(b,()) and a<b]
if '--files' in sys.argv or cyc or fcyc:
    for k, v in sorted(tedges.items()):
        print(f"{k} -> {', '.join(sorted(v))}")
if cyc or fcyc:
    print(f"error: cycles between stages {cyc} and files {fcyc}", file=sys.stderr)
    sys.exit(1)
print(f"ok: {len(files)} files, {len(tedges)} stages, dependencies point one way")
