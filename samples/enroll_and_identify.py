#!/usr/bin/env python3
"""The API in a few lines: enrol everyone in PEOPLE_DIR (one sub-folder of photos each), then name the faces in PHOTO.

    python samples/enroll_and_identify.py PEOPLE_DIR PHOTO [MODEL.onnx]
"""
import argparse
import sys

import cv2

from g2d_edge import G2DError, Recognizer, annotate
from g2d_edge.io import list_people, read_image


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("people_dir", help="one sub-folder of photos per person, named after the person")
    parser.add_argument("photo", help="the photo whose faces are named; the annotated copy is identified.jpg")
    parser.add_argument("model", nargs="?", help="model file (.onnx); default: the model shipped with g2d-edge")
    args = parser.parse_args()
    try:
        photo = read_image(args.photo)
        with Recognizer(model=args.model) as rec:
            for name, photos in list_people(args.people_dir):  # one sub-folder of photos per person
                rec.enroll(name, photos, skip_failed=True)  # several photos -> several templates
            faces = rec.identify(photo)
    except G2DError as exc:  # a missing photo, a folder without people, a bad model: one line, no traceback
        print(f"error: {exc}", file=sys.stderr)
        return 1
    for face in faces:
        print(face.name or "unknown", face.score, face.box.astype(int).tolist())  # score: cosine to the best match
    cv2.imwrite("identified.jpg", annotate(photo, faces))
    return 0


if __name__ == "__main__":
    sys.exit(main())
