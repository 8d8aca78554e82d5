"""Multi-person pose tracking (paper §5): candidates, recovery of missed detections, association by one
cue (oks | flow | reid | corr), greedy or Hungarian matching, track merge, joint threshold, PoseTrack 2018
output. Framework-free: numpy, scipy, torch, opencv. Usage and settings: docs/tracking.md.

The pieces, in the order they run::

    config = TrackingConfig.from_overrides(["tau_corr=0.3"])            # the defaults are the paper's
    videos = load_videos(root, "val")                                    # Video: GT sequence + image root
    models = Models(pose=PoseEstimator, corr=CorrespondenceModel, reid=embedder)
    cache = precompute_video(video, config, models, cues=CUES)           # the networks, once per video
    result = track(cache, config, cue="corr", models=models)             # milliseconds per cue / setting
    seq = result.to_sequence()                                           # PoseTrack 2018 prediction
    table = evaluate_cues(videos, {"corr": {video.name: seq}})            # IDSW, MOTA, mAP, HOTA
"""
from corrtrack.tracking.candidates import Candidates, video_detections
from corrtrack.tracking.config import (BOX_SOURCES, CUES, PRESETS, TrackingConfig, TrackingConfigError)
from corrtrack.tracking.cues import correspondence_similarity, make_cue, masked_oks
from corrtrack.tracking.output import render_video, to_sequence, write_prediction
from corrtrack.tracking.pipeline import evaluate_cues, format_table, track_video, track_videos
from corrtrack.tracking.precompute import Models, PairData, VideoCache, precompute_video
from corrtrack.tracking.tracker import Track, TrackResult, match, merge_tracks, track
from corrtrack.tracking.video import TrackingInputError, Video, load_videos

__all__ = ["BOX_SOURCES", "CUES", "PRESETS", "Candidates", "Models", "PairData", "Track", "TrackResult",
           "TrackingConfig", "TrackingConfigError", "TrackingInputError", "Video", "VideoCache",
           "correspondence_similarity", "evaluate_cues", "format_table", "load_videos", "make_cue", "masked_oks",
           "match", "merge_tracks", "precompute_video", "render_video", "to_sequence",
           "track", "track_video", "track_videos", "video_detections", "write_prediction"]
