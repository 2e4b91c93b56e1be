from services.orchestrator.conversation.playback import GenerationLog


def make() -> GenerationLog:
    g = GenerationLog("g1")
    g.add_chunk(0, 4800, "Thanks for joining.")
    g.add_chunk(4800, 4800)
    g.add_chunk(9600, 4800, "Tell me about a system you designed end to end.")
    g.add_chunk(14400, 4800)
    g.add_chunk(19200, 4800)
    return g


def test_whole_pieces_and_a_proportional_cut():
    g = make()
    assert g.total_samples == 24000 and g.text.startswith("Thanks for joining. Tell me")
    assert g.heard_text(0) == ""
    assert g.heard_text(9600) == "Thanks for joining."
    # 1/3 of the second piece (10 words) played -> its first 3 words
    assert g.heard_text(9600 + 4800) == "Thanks for joining. Tell me about"
    assert g.heard_text(24000) == g.text
    assert g.heard_text(10**9) == g.text


def test_a_piece_barely_started_contributes_no_partial_word():
    g = make()
    assert g.heard_text(9700) == "Thanks for joining."
