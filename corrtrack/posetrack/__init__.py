"""PoseTrack 2017 / 2018 files: an in-memory model and readers / writers for both formats."""
from corrtrack.posetrack.io import (MISSING_SCORE, detect_format, list_json_files, load_folder, load_sequence,
                                    parse_sequence, read_json, save, save_2017, save_2018, to_2017_dict,
                                    to_2018_dict)
from corrtrack.posetrack.types import Frame, Person, PoseTrackFormatError, Sequence, absent_2018

__all__ = ["Frame", "Person", "PoseTrackFormatError", "Sequence", "absent_2018", "MISSING_SCORE",
           "detect_format", "list_json_files", "load_folder", "load_sequence", "parse_sequence", "read_json",
           "save", "save_2017", "save_2018", "to_2017_dict", "to_2018_dict"]
