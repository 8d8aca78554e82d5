"""PoseTrack 2017 / 2018 files: an in-memory model, readers / writers for both formats, detection
files and the synthetic world's visibility sidecars."""
from corrtrack.posetrack.detections import load_detections, load_mot_detections
from corrtrack.posetrack.io import (MISSING_SCORE, detect_format, list_json_files, load_folder, load_sequence,
                                    parse_sequence, read_json, save, save_2017, save_2018, to_2017_dict,
                                    to_2018_dict)
from corrtrack.posetrack.types import (HEAD_SIZE_FACTOR, Frame, Person, PoseTrackFormatError, Sequence,
                                       absent_2018, frame_number, head_size)
from corrtrack.posetrack.visibility import load_visibility

__all__ = ["Frame", "Person", "PoseTrackFormatError", "Sequence", "absent_2018", "frame_number", "head_size",
           "HEAD_SIZE_FACTOR", "MISSING_SCORE", "detect_format", "list_json_files", "load_detections",
           "load_folder", "load_mot_detections", "load_sequence", "load_visibility", "parse_sequence", "read_json",
           "save", "save_2017", "save_2018", "to_2017_dict", "to_2018_dict"]
