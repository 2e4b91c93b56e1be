"""Descriptions from OCR text (no OCR here): language, definitions, constructs, line spans."""
from __future__ import annotations

import pytest

from services.video.providers.describe import describe

CASES = [
    ("def fib(n):\n    if n < 2:\n        return n\n    return fib(n - 1) + fib(n - 2)\n",
     (1, 4), "Python code defining fib using recursion, 4 lines"),
    ("fn main() {\n    let mut v = Vec::new();\n    v.push(1);\n}\n", (0, 0), "Rust code defining main"),
    ("package main\nfunc twoSum(nums []int, target int) []int {\n    seen := map[int]int{}\n}\n", (0, 0),
     "Go code defining twoSum using a dict lookup"),
    ("function mergeIntervals(xs) {\n  xs.sort((a, b) => a[0] - b[0]);\n  const out = [];\n}\n", (10, 14),
     "JavaScript code defining mergeIntervals using sorting, lines 10-14 visible"),
    ("public class Solution {\n  public int[] twoSum(int[] nums, int target) {\n    Map<Integer, Integer> m = new HashMap<>();\n",
     (0, 0), "Java code defining Solution, twoSum using a dict lookup"),
    ("push rbx\nsub rsp, 1000h\nmov [rsp+8], 0\nlea rax, [rsp+8]\ncall memset\nmov rdi, rbx\nretn\n", (0, 0),
     "Assembly code"),
]


@pytest.mark.parametrize("text,span,expect", CASES)
def test_code_descriptions(text: str, span: tuple[int, int], expect: str) -> None:
    (d,) = describe(text, span)
    assert d.type.value == "code_observation" and d.detail.startswith(expect), d.detail


def test_terminal_tests_and_ai_chat() -> None:
    (d,) = describe("$ pytest -q\n....F\n4 passed, 1 failed in 0.12s\n")
    assert d.detail == "a terminal showing test results: 4 passed, 1 failed"
    (d,) = describe("ChatGPT\nMessage ChatGPT\nHow do I merge intervals in Python?\n")
    assert d.detail.startswith("an AI chat window (ChatGPT)")
    assert describe("") == [] and describe("a b") == []
