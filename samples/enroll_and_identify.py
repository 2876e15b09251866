#!/usr/bin/env python3
"""The API in ten lines: enrol everyone in PEOPLE_DIR (one sub-folder of photos each), then name the faces in PHOTO.

    python samples/enroll_and_identify.py PEOPLE_DIR PHOTO [MODEL.onnx]
"""
import sys
from pathlib import Path

import cv2

from g2d_edge import Recognizer, annotate
from g2d_edge.io import list_people, read_image

people_dir, photo = Path(sys.argv[1]), read_image(sys.argv[2])
rec = Recognizer(model=sys.argv[3] if len(sys.argv) > 3 else None)  # None: the model shipped with g2d-edge
for name, photos in list_people(people_dir):  # one sub-folder of photos per person
    rec.enroll(name, photos, skip_failed=True)  # several photos -> several templates
faces = rec.identify(photo)
for face in faces:
    print(face.name or "unknown", face.score, face.box.astype(int).tolist())  # score: cosine to the best match
cv2.imwrite("identified.jpg", annotate(photo, faces))
