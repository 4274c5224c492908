"""Static scan of the built extension (x86-64 ELF): no AVX outside the ISA code.

    python .ci/isa_scan.py PATH/TO/_core....so

The rule (cpp/gemm/cpu_features.cpp): code built with instruction-set flags
is the *_avx2.cpp / *_avx512.cpp files, all of it in namespace
dnnfast::isa_<isa>, and the build gathers every function of those namespaces
into the section .text.dnnfast_isa (cmake/isa_sections.ld), which a stripped
module keeps. Every CPU may run anything outside that section, so this fails
(exit 1) when, outside it:
  - an instruction is VEX- or EVEX-encoded (AVX, AVX2, FMA, AVX-512, BMI) or
    names a ymm/zmm or k (mask) register;
  - a direct call or jump lands inside it (generic code may enter ISA code
    only through a kernel table's function pointers, after the CPU check);
  - a load-time initialiser (.init_array) points into it;
and when the section is missing or holds no AVX code at all (then the scan
would prove nothing). With a symbol table, every function in the section must
also be named dnnfast::isa_*; stripped, offenders are shown by address and
the function's range from .eh_frame.
"""
from __future__ import annotations

import bisect
import re
import subprocess
import sys
from collections import defaultdict

ISA_SECTION = ".text.dnnfast_isa"
SEGMENT_PREFIXES = {"26", "2e", "36", "3e", "64", "65", "67"}
# VEX (c4, c5) and EVEX (62) lead bytes: LES, LDS and BOUND do not exist in
# 64-bit mode, so there these bytes always start a VEX/EVEX instruction.
VEX_LEAD = {"c4", "c5", "62"}
WIDE_REG = re.compile(r"%(?:[yz]mm\d+|k[0-7])\b")
INSN = re.compile(r"^\s*([0-9a-f]+):\t([0-9a-f ]+)\t(\S+)\s*(.*)$")
LABEL = re.compile(r"^([0-9a-f]+) <(.*)>:$")
SECTION = re.compile(r"^Disassembly of section (\S+):$")
TARGET = re.compile(r"^([0-9a-f]+)(?: <.*>)?$")
BRANCH = re.compile(r"^(?:call|jmp|j[a-z]{1,3})q?$")


def run(*cmd: str) -> str:
    return subprocess.run(cmd, check=True, capture_output=True, text=True).stdout


def sections(path):
    """name -> (start, end, flags) of the allocated sections."""
    out = {}
    for line in run("readelf", "-S", "-W", path).splitlines():
        m = re.match(r"^\s*\[\s*\d+\]\s+(\S+)\s+\S+\s+([0-9a-f]+)\s+[0-9a-f]+\s+([0-9a-f]+)\s+\S+\s+(\S*)", line)
        if m:
            start, size = int(m.group(2), 16), int(m.group(3), 16)
            out[m.group(1)] = (start, start + size, m.group(4))
    return out


def fde_ranges(path):
    """Sorted (start, end) of every function that has unwind info."""
    ranges = []
    for line in run("readelf", "--debug-dump=frames", path).splitlines():
        m = re.search(r"FDE cie=\S+ pc=([0-9a-f]+)\.\.([0-9a-f]+)", line)
        if m:
            ranges.append((int(m.group(1), 16), int(m.group(2), 16)))
    return sorted(ranges)


def init_array_targets(path, secs):
    """Addresses the loader calls at load time (.init_array), from its
    relocations (a shared object stores them as R_X86_64_RELATIVE addends)."""
    if ".init_array" not in secs:
        return []
    lo, hi, _ = secs[".init_array"]
    targets = []
    for line in run("readelf", "-r", "-W", path).splitlines():
        f = line.split()
        if len(f) >= 4 and f[2].endswith("RELATIVE"):
            try:
                off, addend = int(f[0], 16), int(f[-1], 16)
            except ValueError:
                continue
            if lo <= off < hi:
                targets.append(addend)
    return targets


def is_wide(raw: str, operands: str) -> bool:
    b = raw.split()
    i = 0
    while i < len(b) and b[i] in SEGMENT_PREFIXES:
        i += 1
    return (i < len(b) and b[i] in VEX_LEAD) or bool(WIDE_REG.search(operands))


def main(path: str) -> int:
    secs = sections(path)
    all_secs = set(re.findall(r"\]\s+(\S+)", run("readelf", "-S", "-W", path)))
    if ISA_SECTION not in secs:
        print(f"isa_scan: FAIL: {path} has no section {ISA_SECTION}: the build did not gather the "
              "ISA code (cmake/isa_sections.ld), so it cannot be told from generic code")
        return 1
    isa_lo, isa_hi, _ = secs[ISA_SECTION]
    fdes = fde_ranges(path)
    fde_starts = [s for s, _ in fdes]

    def function_of(addr, labels):
        if labels:  # symbol table: the nearest label at or before addr
            k = bisect.bisect_right(labels[0], addr) - 1
            if k >= 0:
                return labels[1][k]
        k = bisect.bisect_right(fde_starts, addr) - 1
        if k >= 0 and addr < fdes[k][1]:
            return f"function at {fdes[k][0]:#x}..{fdes[k][1]:#x} (stripped: no name)"
        return "code without unwind info (stripped: no name)"

    label_addrs, label_names = [], []
    wide_outside = defaultdict(list)  # function -> offending instructions
    calls_in = defaultdict(list)
    bad_names = []
    counts = defaultdict(int)
    section = None
    proc = subprocess.Popen(["objdump", "-d", "-w", "--insn-width=16", "--demangle", path],
                            stdout=subprocess.PIPE, text=True)
    pending = []  # (addr, text, kind) to attribute once all labels are known
    for line in proc.stdout:
        m = SECTION.match(line)
        if m:
            section = m.group(1)
            continue
        m = LABEL.match(line)
        if m:
            addr, name = int(m.group(1), 16), m.group(2)
            if not name.startswith(".") and not re.search(r"@plt|^_init$|^_fini$", name):
                label_addrs.append(addr)
                label_names.append(name)
                if section == ISA_SECTION and ".symtab" in all_secs and not name.startswith("dnnfast::isa_"):
                    bad_names.append(name)
            continue
        m = INSN.match(line)
        if not m:
            continue
        addr = int(m.group(1), 16)
        raw, mnem, ops = m.group(2), m.group(3), m.group(4)
        inside = section == ISA_SECTION
        wide = is_wide(raw, ops)
        counts["insn_isa" if inside else "insn_other"] += 1
        if wide:
            counts["wide_isa" if inside else "wide_other"] += 1
            if not inside:
                pending.append((addr, f"{addr:#x}: {mnem} {ops}".rstrip(), "wide"))
        if not inside and BRANCH.match(mnem):
            t = TARGET.match(ops.strip())
            if t and isa_lo <= int(t.group(1), 16) < isa_hi:
                pending.append((addr, f"{addr:#x}: {mnem} {ops}".rstrip(), "call"))
    if proc.wait() != 0:
        print("isa_scan: FAIL: objdump failed")
        return 1
    # Names only from a full symbol table: a stripped module keeps its few
    # exported (dynamic) symbols, which would name every function wrongly.
    order = sorted(range(len(label_addrs)), key=label_addrs.__getitem__)
    labels = ([label_addrs[k] for k in order], [label_names[k] for k in order]) if ".symtab" in all_secs else None
    for addr, text, kind in pending:
        (wide_outside if kind == "wide" else calls_in)[function_of(addr, labels)].append(text)
    init_in = [a for a in init_array_targets(path, secs) if isa_lo <= a < isa_hi]

    print(f"isa_scan: {path}")
    print(f"  symbols: {str(len(label_addrs)) + ' functions' if labels else 'none (stripped module)'}")
    print(f"  {ISA_SECTION}: {isa_hi - isa_lo} bytes, {counts['insn_isa']} instructions, "
          f"{counts['wide_isa']} VEX/EVEX")
    print(f"  elsewhere: {counts['insn_other']} instructions, {counts['wide_other']} VEX/EVEX, "
          f"{sum(map(len, calls_in.values()))} direct calls/jumps into {ISA_SECTION}, "
          f"{len(init_in)} load-time initialisers in it")
    failed = False
    if counts["wide_isa"] == 0:
        print(f"isa_scan: FAIL: {ISA_SECTION} holds no AVX code: the ISA kernels are missing or not "
              "gathered there, and this scan proves nothing")
        failed = True
    for title, found in (("AVX/AVX2/AVX-512 instructions outside the ISA code", wide_outside),
                         (f"direct calls or jumps into {ISA_SECTION} from generic code", calls_in)):
        if found:
            failed = True
            print(f"isa_scan: FAIL: {title}, in {len(found)} function(s):")
            for fn, insns in sorted(found.items()):
                print(f"  {fn}: {len(insns)}, e.g.")
                for t in insns[:3]:
                    print(f"      {t}")
    if init_in:
        failed = True
        print(f"isa_scan: FAIL: load-time initialisers inside {ISA_SECTION}: "
              + ", ".join(f"{a:#x}" for a in init_in))
    if bad_names:
        failed = True
        print(f"isa_scan: FAIL: functions in {ISA_SECTION} not named dnnfast::isa_*: {bad_names[:5]}")
    if not failed:
        print("isa_scan: OK: AVX code only in dnnfast::isa_* functions, entered only through the kernel tables")
    return 1 if failed else 0


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    sys.exit(main(sys.argv[1]))
