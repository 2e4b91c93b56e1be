"""Video.Analyze end to end on the offline provider: consent, sampling, change detection, bad
input in-band, stats, health."""
from __future__ import annotations

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from interview.v1 import common_pb2, video_pb2
from tests.video.conftest import CAMERA, SCREEN, cfg, frame, run
from tests.video.screens import DARK, TWO_SUM, editor, jpeg

CODE = jpeg(editor(TWO_SUM, DARK))


async def test_code_on_screen_becomes_an_observation_with_stats(video_server) -> None:
    stub = await video_server()
    # 3 s of a 10 fps screen share, always the same code: SCREEN_FOCUS keeps 2 fps, change detection 1
    reqs = [cfg()] + [frame(CODE, t) for t in range(0, 3000, 100)]
    obs, problems, stats, _ = await run(stub, reqs, gap_s=0.02)  # paced: the decode queue never overflows
    assert not problems
    assert stats.frames_received == 30
    assert 5 <= stats.frames_sampled <= 7 and stats.frames_skipped_rate == 30 - stats.frames_sampled
    assert stats.frames_analyzed == 1 and stats.frames_skipped_unchanged == stats.frames_sampled - 1
    assert stats.provider == "offline" and stats.frames_sent_to_model == 0 and not stats.fell_back
    (o,) = obs
    assert o.type == "code_observation" and "two_sum" in o.detail and "14 lines" in o.detail, o.detail
    assert o.id == "t1-1" and o.source == SCREEN and o.actionable and len(o.detail) <= 200


async def test_no_consent_refused_in_band_and_never_decoded(video_server) -> None:
    stub = await video_server()
    garbage = b"not a jpeg at all"  # would be an INVALID_ARGUMENT Problem if it were decoded
    obs, problems, stats, _ = await run(stub, [cfg(screen=True, camera=False), frame(garbage, 0, CAMERA)])
    assert [p.code for p in problems] == [grpc.StatusCode.PERMISSION_DENIED.value[0]]
    assert "consent" in problems[0].message
    assert stats.frames_refused_consent == 1 and stats.frames_invalid == 0 and not obs


async def test_withdrawn_consent_drops_buffered_frames(video_server) -> None:
    stub = await video_server()
    withdraw = video_pb2.AnalyzeRequest(update=video_pb2.VideoModeUpdate(
        consent=common_pb2.VideoConsent(screen=False)))
    reqs = [cfg(), frame(CODE, 0), withdraw, frame(CODE, 1000)]
    obs, problems, stats, _ = await run(stub, reqs)
    assert stats.frames_refused_consent == 1
    # the first frame was queued or decoding when consent went: dropped, never analysed
    assert stats.frames_analyzed + stats.frames_dropped_withdrawn == 1
    assert not obs


async def test_bad_jpeg_and_oversized_frames_are_problems_and_the_stream_lives_on(video_server) -> None:
    stub = await video_server(VIDEO_MAX_FRAME_BYTES="300000", VIDEO_MAX_FRAME_PIXELS="2500000")
    from PIL import Image
    huge_pixels = jpeg(Image.new("RGB", (2600, 1000)), 50)  # small in bytes, 2.6 MP
    big_bytes = b"\xff\xd8" + b"\0" * 400_000
    reqs = [cfg(), frame(b"\xff\xd8\xff garbage", 0), frame(big_bytes, 600), frame(huge_pixels, 1200),
            frame(CODE, 1800)]
    obs, problems, stats, _ = await run(stub, reqs)
    codes = [p.code for p in problems]
    assert codes.count(grpc.StatusCode.INVALID_ARGUMENT.value[0]) == 1
    assert codes.count(grpc.StatusCode.RESOURCE_EXHAUSTED.value[0]) == 2
    assert stats.frames_invalid == 1 and stats.frames_oversized == 2
    assert any("two_sum" in o.detail for o in obs)


async def test_sampling_modes_and_updates(video_server) -> None:
    stub = await video_server()
    off = video_pb2.AnalyzeRequest(update=video_pb2.VideoModeUpdate(sampling=video_pb2.SAMPLING_OFF))
    reqs = [cfg(camera=True, mode=video_pb2.SAMPLING_LOW)]
    dark = jpeg(editor("", DARK).resize((640, 360)).point(lambda _: 3))
    reqs += [frame(dark, t, CAMERA) for t in range(0, 3000, 100)]  # LOW: camera 0.5 fps -> 2
    reqs += [off] + [frame(dark, t, CAMERA) for t in range(3000, 5000, 100)]  # OFF: none
    obs, problems, stats, _ = await run(stub, reqs)
    assert stats.frames_sampled == 2 and stats.frames_received == 50
    assert [o.detail for o in obs] == ["camera appears covered or dark"] and obs[0].source == CAMERA


async def test_first_message_must_be_config(video_server) -> None:
    stub = await video_server()
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await run(stub, [frame(CODE, 0)])
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_health_serving_with_a_working_provider_only(video_server, monkeypatch) -> None:
    stub = await video_server()
    health = health_pb2_grpc.HealthStub(stub.channel)
    reply = await health.Check(health_pb2.HealthCheckRequest(service="interview.v1.Video"))
    assert reply.status == health_pb2.HealthCheckResponse.SERVING
    monkeypatch.setenv("PATH", "/nonexistent")  # no tesseract, no gemini key: nothing works
    stub2 = await video_server()
    reply = await health_pb2_grpc.HealthStub(stub2.channel).Check(health_pb2.HealthCheckRequest(service=""))
    assert reply.status == health_pb2.HealthCheckResponse.NOT_SERVING


async def test_streams_leave_no_tasks_behind(video_server) -> None:
    import asyncio

    stub = await video_server()
    for i in range(10):
        reqs = [cfg(camera=True)] + [frame(CODE, t) for t in (0, 600)]
        if i % 2 == 0:
            await run(stub, reqs)
            continue

        async def endless():  # the client cancels mid-stream instead of half-closing
            for r in reqs:
                yield r
            await asyncio.Event().wait()

        call = stub.Analyze(endless())
        await asyncio.sleep(0.3)
        call.cancel()
    await asyncio.sleep(0.3)
    left = [t.get_name() for t in asyncio.all_tasks() if t.get_name().startswith("video-") and t.get_name() != "video-health"]
    assert left == []


async def test_frozen_camera_is_reported_and_clears(video_server) -> None:
    from PIL import Image, ImageDraw

    def cam(shift: int) -> bytes:
        img = Image.new("RGB", (640, 480), (120, 110, 100))
        ImageDraw.Draw(img).ellipse([200 + shift, 120, 440 + shift, 400], fill=(200, 170, 150))
        return jpeg(img)

    still, moved = cam(0), cam(60)
    stub = await video_server()
    reqs = [cfg(screen=False, camera=True, mode=video_pb2.SAMPLING_NORMAL)]
    reqs += [frame(still, t, CAMERA) for t in range(0, 62_000, 1000)] + [frame(moved, 62_000, CAMERA)]
    obs, _, stats, _ = await run(stub, reqs)
    assert [o.detail for o in obs] == ["camera image has not changed for 60 s",
                                       "camera picture visible and changing again"]
    assert all(o.type == "camera_state" and o.source == CAMERA for o in obs)
