from hybridgate.providers.local.textstream import StopTextStream


def feed_all(stream, pieces):
    out = [stream.feed(p) for p in pieces]
    if not stream.stopped:
        out.append(stream.flush())
    return "".join(out)


def test_no_stops_passes_through():
    assert feed_all(StopTextStream([]), [b"he", b"llo"]) == "hello"


def test_stop_string_across_tokens_is_cut():
    s = StopTextStream(["END"])
    assert feed_all(s, [b"abc E", b"N", b"D more"]) == "abc "
    assert s.stopped


def test_held_prefix_released_when_not_a_stop():
    s = StopTextStream(["END"])
    assert s.feed(b"abc E") == "abc "  # "E" may start "END": held back
    assert s.feed(b"x") == "Ex"


def test_multibyte_utf8_split_across_tokens():
    data = "héllo €".encode()
    pieces = [data[i:i + 1] for i in range(len(data))]
    assert feed_all(StopTextStream([]), pieces) == "héllo €"


def test_earliest_stop_wins():
    s = StopTextStream(["b", "a"])
    assert feed_all(s, [b"xxab"]) == "xx"
