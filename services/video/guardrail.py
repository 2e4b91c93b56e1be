"""The guardrail every observation from every provider passes before it leaves the service.

Refused by design (dropped and counted by reason): types outside the closed list, types or wording
about emotion, nervousness, confidence, deception/honesty, personality, appearance, demographics,
or inferred mental state; and model output that is not the JSON asked for. Never raises on input."""
from __future__ import annotations

import json
import re
from collections import Counter
from typing import Any

from services.common import metrics
from services.video.observations import Candidate, ObsType
from services.video.redact import clean


def _words(*stems: str) -> str:
    return "|".join(stems)


# Category -> wording. Matched case-insensitively on word boundaries of the type and the detail.
FORBIDDEN: dict[str, re.Pattern[str]] = {name: re.compile(rf"\b(?:{pattern})", re.I) for name, pattern in {
    "emotion": _words(
        r"emotion", r"feel(?:s|ing|ings)?\b", r"felt\b", r"mood", r"happ(?:y|ier|iness)", r"sad(?:ness|ly)?\b",
        r"unhapp", r"angr", r"anger", r"frustrat", r"annoy", r"irritat", r"upset", r"anxi", r"stress(?:ed|ful)", r"under stress",
        r"worr(?:y|ied|ies)", r"afraid", r"fear", r"scared", r"excit", r"enthusias", r"bored", r"boredom",
        r"joy", r"cheer", r"disappoint", r"delight", r"pleased", r"overwhelm", r"in a panic", r"panicky", r"panic attack", r"uneasy",
        r"(?:un)?comfortable", r"at ease", r"distress", r"relie(?:f|ved)", r"satisfied", r"proud", r"embarrass",
        r"ashamed", r"surprised", r"smil(?:e|es|ed|ing)", r"frown", r"grimac", r"scowl", r"laugh", r"cry(?:ing|ies)?\b",
        r"cried", r"tear(?:s|ful)\b", r"sigh(?:s|ed|ing)?\b", r"content(?:ed|ment)\b", r"calm", r"relaxed", r"tense",
        r"tension", r"exasperat", r"agitat", r"glum", r"gloomy", r"miserable", r"elat", r"thrilled", r"tired",
        r"exhausted", r"sleepy", r"fatigue", r"sentiment", r"affective", r"facial expression"),
    "mental_state": _words(
        r"confus", r"distract", r"focus(?:ed|ing)? (?:on the|intently|hard)", r"(?:dis)?engaged", r"attentive",
        r"inattentive", r"concentrat", r"deep in thought", r"thinking hard", r"struggl", r"lost\b", r"stuck",
        r"puzzled", r"perplex", r"overthink", r"zon(?:ed|ing) out", r"daydream", r"absent-?minded", r"wants to",
        r"trying to (?:hide|avoid|impress)", r"intend", r"intention"),
    "nervousness": _words(r"nervous", r"jitter", r"fidget", r"sweat", r"shak(?:y|ing|es)", r"trembl", r"on edge",
                          r"jumpy", r"restless", r"twitch", r"bit(?:ing|es) (?:his|her|their) (?:nails|lip)"),
    "confidence": _words(r"confiden", r"self-assur", r"self-doubt", r"unsure", r"uncertain", r"insecur",
                         r"hesita", r"doubt", r"assertive", r"timid", r"shy\b", r"composed(?! of| from| with)", r"poise",
                         r"self-conscious", r"sure of (?:him|her|them)sel", r"cocky", r"meek"),
    "deception": _words(r"honest", r"dishonest", r"lying", r"liar", r"\blies\b(?! in| on| at| between)", r"deceiv",
                        r"decept", r"cheat", r"truthful", r"sincer", r"insincer", r"trustworth", r"suspicious",
                        r"genuine(?:ly)? (?:know|understand|wrote)", r"faking", r"fakes (?:it|knowledge|understanding)", r"covering up", r"hiding something", r"evasive",
                        r"misleading", r"plagiar", r"(?:his|her|their|academic|personal) integrity", r"lacks? integrity", r"credible", r"credibility", r"shifty",
                        r"not (?:their|his|her) own work", r"being fed answers", r"someone (?:else )?helping"),
    "personality": _words(r"personality", r"introvert", r"extrover", r"extravert", r"(?:un)?friendly", r"arrogan",
                          r"humble", r"lazy", r"diligent", r"motivated", r"passionate", r"charism", r"outgoing",
                          r"reserved (?:person|candidate|type)", r"(?:seems|is|appears) reserved", r"polite", r"rude", r"attitude", r"(?:his|her|their|of) character\b", r"character trait", r"strong character", r"smart (?:person|candidate|guy)", r"(?:is|seems|looks) smart", r"intelligent\b",
                          r"clever", r"stupid", r"dumb", r"competent", r"incompetent", r"brilliant", r"talented",
                          r"warm person", r"cold person", r"likeable", r"professional demeanou?r", r"demeanou?r",
                          r"energetic", r"stubborn", r"curious person", r"ambitious", r"sloppy person"),
    "appearance": _words(r"appearance", r"attractive", r"pretty", r"handsome", r"beautiful", r"ugly",
                         r"overweight", r"obese", r"skinny", r"\bfat\b", r"\bthin\b (?:man|woman|person|face)", r"hair",
                         r"beard", r"mustache", r"moustache", r"bald", r"wear(?:s|ing)\b", r"dressed", r"cloth",
                         r"shirt", r"hoodie", r"jacket", r"glasses", r"makeup", r"make-up", r"tattoo", r"piercing",
                         r"skin", r"groom", r"(?:un)?kempt", r"looks? (?:good|bad|nice|neat|messy|tidy|young|old)",
                         r"well-dressed", r"jewel", r"earring", r"outfit", r"headscarf", r"hijab", r"turban"),
    "demographics": _words(r"\bage\b", r"aged\b", r"years? old", r"in (?:his|her|their) (?:early |late |mid-)?\d0s", r"young", r"elderly", r"\bold (?:man|woman|person)",
                           r"teen", r"middle-aged", r"gender", r"\bmale\b", r"female", r"\bman\b", r"\bwoman\b",
                           r"\bmen\b", r"\bwomen\b", r"\bboy\b", r"\bgirl\b", r"\bguy\b", r"\blady\b", r"\bhe\b",
                           r"\bshe\b", r"\bhis\b", r"\bher\b", r"\bhim\b", r"race\b(?! condition)", r"racial", r"ethnic",
                           r"asian", r"african", r"caucasian", r"hispanic", r"latin[oax]", r"(?:black|white|brown) "
                           r"(?:man|woman|person|guy|candidate|people|skin)", r"nationality", r"religio", r"muslim",
                           r"christian", r"jewish", r"hindu", r"accent\b(?! colou?r)", r"accented", r"pregnan", r"disabilit", r"disabled",
                           r"wheelchair", r"sexual", r"\bgay\b", r"lesbian", r"transgender", r"native speaker",
                           r"foreigner", r"immigrant"),
}.items()}

# Type names a model might invent for a forbidden category.
_FORBIDDEN_TYPES = re.compile(r"emotion|mood|sentiment|affect|feeling|nervous|stress|confiden|honest|decept|lie|"
                              r"truth|personality|trait|appearance|looks|attire|demograph|gender|age|ethnic|race",
                              re.I)


def forbidden_category(text: str) -> str | None:
    for name, pattern in FORBIDDEN.items():
        if pattern.search(text):
            return name
    return None


class Guardrail:
    """Filters candidates; counts every drop by reason (category, 'unknown_type', 'malformed', ...)."""

    def __init__(self) -> None:
        self.dropped: Counter[str] = Counter()
        self.passed = 0

    def _drop(self, reason: str) -> None:
        self.dropped[reason] += 1
        metrics.FILTERED_OBSERVATIONS.labels(reason).inc()

    def check(self, c: Candidate) -> Candidate | None:
        kind = ObsType.parse(c.type) if isinstance(c.type, str) else None
        if kind is None:
            reason = "unknown_type"
            if isinstance(c.type, str) and _FORBIDDEN_TYPES.search(c.type):
                reason = forbidden_category(c.type.replace("_", " ")) or "forbidden_type"
            self._drop(reason)
            return None
        if not isinstance(c.detail, str) or not c.detail.strip():
            self._drop("empty")
            return None
        category = forbidden_category(c.detail)
        if category:
            self._drop(category)
            return None
        confidence = c.confidence if isinstance(c.confidence, (int, float)) else 0.5
        self.passed += 1
        return Candidate(kind.value, clean(c.detail), max(0.0, min(1.0, float(confidence))), c.source, c.time_ms)

    def parse_model_output(self, text: str, source: int, time_ms: int) -> list[Candidate]:
        """Model text -> candidates. Expected: {"observations": [{"type", "detail", "confidence",
        "source"}]} (a bare list is accepted). Anything else is counted as malformed and dropped."""
        body = text.strip()
        if body.startswith("```"):
            body = re.sub(r"^```(?:json)?\s*|\s*```$", "", body)
        try:
            data: Any = json.loads(body)
        except (json.JSONDecodeError, RecursionError):
            self._drop("malformed")
            return []
        items = data.get("observations") if isinstance(data, dict) else data
        if not isinstance(items, list):
            self._drop("malformed")
            return []
        out: list[Candidate] = []
        for item in items:
            if not isinstance(item, dict) or not isinstance(item.get("type"), str):
                self._drop("malformed")
                continue
            src = {"screen": 2, "camera": 1}.get(str(item.get("source", "")).lower(), source)
            conf = item.get("confidence", 0.6)
            out.append(Candidate(item["type"], item.get("detail") if isinstance(item.get("detail"), str) else "",
                                 conf if isinstance(conf, (int, float)) and not isinstance(conf, bool) else 0.5,
                                 src, time_ms))
        return out
