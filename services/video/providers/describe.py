"""OCR text of a shared screen -> a short factual description: what kind of window, which code
constructs, which error, which search. Heuristics on text only; see the README for its limits."""
from __future__ import annotations

import re
import urllib.parse
from dataclasses import dataclass

from services.video.observations import ObsType


@dataclass(frozen=True)
class Description:
    type: ObsType
    detail: str
    confidence: float


_LANGS: list[tuple[str, re.Pattern[str]]] = [
    ("Rust", re.compile(r"\bfn\s+\w+\s*[(<]|\blet\s+mut\b|\bimpl\b|\b(?:Some|Ok|Err)\(|&mut\s|\bpub\s+fn\b")),
    ("Python", re.compile(r"\b(?:def|class)\s+\w+.*:\s*$|^\s*(?:import|from)\s+\w+|\belif\b|\bself\.\w+\s*=", re.M)),
    ("Go", re.compile(r"^\s*func\s+\w+|^\s*package\s+\w+|:=", re.M)),
    ("Java", re.compile(r"\bpublic\s+(?:static\s+)?(?:class|void|int|String)\b|System\.out")),
    ("C++", re.compile(r"#include\s*<|std::|\bint\s+main\s*\(")),
    ("JavaScript", re.compile(r"\bfunction\s+\w+\s*\(|\b(?:const|let)\s+\w+\s*=|=>|console\.log")),
    ("SQL", re.compile(r"\bSELECT\b.+\bFROM\b|\bCREATE\s+TABLE\b", re.I)),
]
_ASM = re.compile(r"^\s*(?:mov[a-z]*|push|pop|lea|call|sub|add|cmp|jmp|j[a-z]{1,3}|retn?|xor|and|or)\s", re.M)
_DEFS = [
    re.compile(r"\b(?:def|func|function|fn)\s+([A-Za-z_]\w*)\s*[(<]"),
    re.compile(r"\bclass\s+([A-Za-z_]\w*)"),
    re.compile(r"\b(?:const|let)\s+([A-Za-z_]\w*)\s*=\s*(?:async\s*)?\("),
    re.compile(r"\b(?:public|private|static)\s+[\w<>\[\]]+\s+([a-z]\w*)\s*\("),
]
_CONSTRUCTS = [
    ("a dict lookup", re.compile(r"=\s*\{\s*\}|\bdict\(|defaultdict|\bCounter\(|new\s+HashMap|\bmap\[|new Map\(")),
    ("a set", re.compile(r"\bset\(\)|new\s+HashSet|new Set\(")),
    ("sorting", re.compile(r"\.sort\(|\bsorted\(|Arrays\.sort|std::sort")),
    ("a heap", re.compile(r"heapq|PriorityQueue|priority_queue")),
    ("a deque/queue", re.compile(r"\bdeque\(|\bQueue\(")),
    ("binary search", re.compile(r"\b(?:lo|low|left)\s*<=?\s*(?:hi|high|right)\b")),
    ("a while loop", re.compile(r"^\s*while\b", re.M)),
    ("a for loop", re.compile(r"^\s*for\b", re.M)),
]
_TRACEBACK = re.compile(r"\bTraceback\b")
_EXC = re.compile(r"^\s*([A-Z]\w*(?:Error|Exception|Exit|Interrupt))\b(?::\s*(.*))?", re.M)
_TESTS = re.compile(r"(\d+)\s+(passed|failed|errors?)\b")
_PROMPT = re.compile(r"^\s*(?:\S+@\S+[:~][^$#]*)?[$#>]\s+(\S.*)$", re.M)
_QUERY = re.compile(r"[?&]q=([^&\s]+)|^(.{2,80}?) - (?:Google Search|Bing|DuckDuckGo)", re.M)
_AI_CHAT = re.compile(r"\b(ChatGPT|Claude|Copilot|Gemini|Perplexity|Ask anything|Message ChatGPT)\b")
_SEARCH = re.compile(r"\b(?:google\.com/search|bing\.com/search|duckduckgo\.com|About [\d,]+ results|Google Search)", re.I)
_DOCS = re.compile(r"docs\.python\.org|developer\.mozilla\.org|\bdocumentation\b|stackoverflow\.com|Stack Overflow", re.I)
_CODE_LINE = re.compile(r"[(){}\[\]=:;]")


def _defined(text: str) -> list[str]:
    names: list[str] = []
    for pattern in _DEFS:
        for name in pattern.findall(text):
            if name not in names:
                names.append(name)
    return names


def _recursive(text: str, name: str) -> bool:
    body = re.split(rf"\b(?:def|func|function|fn)\s+{re.escape(name)}\s*[(<]", text, maxsplit=1)
    if len(body) < 2:
        return False
    own = re.split(r"\n\s*(?:def|func|function|fn|class)\s", body[1], maxsplit=1)[0]
    return re.search(rf"\b{re.escape(name)}\s*\(", own) is not None


def richness(text: str) -> int:
    """How much a read of code recognised: names defined plus constructs seen (two reads of the
    same still screen: the one that recognised more is the better read)."""
    return len(_defined(text)) + sum(1 for _, p in _CONSTRUCTS if p.search(text))


def describe_code(text: str, span: tuple[int, int] = (0, 0)) -> Description | None:
    names = _defined(text)
    if len(_ASM.findall(text)) >= 5:
        lang = "Assembly"
    else:
        lang = next((name for name, p in _LANGS if p.search(text)), "")
    code_lines = [ln for ln in text.splitlines() if _CODE_LINE.search(ln) or (lang == "Assembly" and _ASM.match(ln))]
    if not names and (not lang or len(code_lines) < 3):
        return None
    first, last = span
    main = [n for n in names if not n.startswith("test")][:3] or names[:2]
    constructs = [label for label, p in _CONSTRUCTS if p.search(text)]
    if any(_recursive(text, n) for n in main):
        constructs.insert(0, "recursion")
    tests = [n for n in names if n.startswith("test")]
    parts = [f"{lang or 'Source'} code"]
    if main:
        parts.append("defining " + ", ".join(main))
    detail = " ".join(parts)
    if constructs:
        detail += " using " + (", ".join(constructs[:3]) if len(constructs) > 1 else constructs[0])
    if tests:
        detail += f", with {len(tests)} test function{'s' if len(tests) > 1 else ''}"
    if last and first > 3:  # a misread first number or two still means the top of the file
        detail += f", lines {first}-{last} visible"
    else:
        detail += f", {last or len(code_lines)} lines"
    return Description(ObsType.CODE, detail, 0.8 if names else 0.6)


def describe_terminal(text: str) -> Description | None:
    if _TRACEBACK.search(text):
        exc = _EXC.findall(text)
        what = f": {exc[-1][0]}" if exc else ""
        return Description(ObsType.SCREEN_CONTENT, f"a terminal showing a Python traceback{what}", 0.85)
    tests = _TESTS.findall(text)
    if tests:
        summary = ", ".join(f"{n} {kind}" for n, kind in tests[:3])
        return Description(ObsType.SCREEN_CONTENT, f"a terminal showing test results: {summary}", 0.8)
    exc = _EXC.findall(text)
    if exc:
        return Description(ObsType.SCREEN_CONTENT, f"a terminal or output showing an error: {exc[-1][0]}", 0.7)
    cmds = _PROMPT.findall(text)
    if cmds:
        return Description(ObsType.SCREEN_CONTENT, f"a terminal; last command: {cmds[-1].strip()[:80]}", 0.6)
    return None


def describe_browser(text: str) -> Description | None:
    chat = _AI_CHAT.search(text)
    if chat:
        return Description(ObsType.SCREEN_CONTENT, f"an AI chat window ({chat.group(1)}) is visible", 0.7)
    if _SEARCH.search(text):
        q = _QUERY.search(text)
        query = (urllib.parse.unquote_plus(q.group(1)) if q and q.group(1) else q.group(2) if q else "").strip()
        if not query:  # the address bar is often not read: name the first result instead
            lines = text.splitlines()
            titles = [lines[i + 1].strip() for i, ln in enumerate(lines[:-1]) if " > " in ln and lines[i + 1].strip()]
            detail = f"a browser showing search results, first: '{titles[0][:60]}'" if titles \
                else "a browser showing search results"
        else:
            detail = f"a browser showing search results for '{query[:60]}'"
        return Description(ObsType.SCREEN_CONTENT, detail, 0.75)
    if _DOCS.search(text):
        return Description(ObsType.SCREEN_CONTENT, "a browser showing documentation or Q&A pages", 0.6)
    return None


def describe(text: str, span: tuple[int, int] = (0, 0)) -> list[Description]:
    """The screen's description: a terminal or browser first (they also contain code-like text),
    else code, else a generic note that text is visible."""
    if not text.strip():
        return []
    for fn in (describe_terminal, describe_browser):
        d = fn(text)
        if d:
            return [d]
    code = describe_code(text, span)
    if code:
        return [code]
    words = re.findall(r"[A-Za-z]{3,}", text)
    if len(words) >= 5:
        return [Description(ObsType.SCREEN_CONTENT, "a window with text: " + " ".join(words[:12]), 0.4)]
    return []
