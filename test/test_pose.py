"""The annotated image's id labels on a real COCO photo of eleven people with their annotated keypoints."""
import json

import cv2
import numpy as np

from conftest import MINI_TRAIN_ANNOTATIONS, COCO

CROWD_PHOTO = '000000370162.jpg'  # coco-mini train2017: 11 people with 5 or more annotated keypoints


def annotated_poses(file_name):
    """The photo (BGR) and its people as Poses (COCO keypoints in the OpenPose order), ids 0, 1, ..."""
    from openpose_ros.formats.coco import coco_to_openpose
    from openpose_ros.pose import Pose

    document = json.loads(MINI_TRAIN_ANNOTATIONS.read_text())
    image = next(entry for entry in document['images'] if entry['file_name'] == file_name)
    people = [annotation for annotation in document['annotations']
              if annotation['image_id'] == image['id'] and annotation['num_keypoints'] >= 5]
    poses = []
    for index, person in enumerate(people):
        keypoints = coco_to_openpose(person['keypoints'])[0]
        poses.append(Pose(np.where(keypoints[:, 2:] > 0, keypoints[:, :2], -1), 1.0, id=index))
    return cv2.imread(str(COCO / 'coco-mini' / 'train2017' / file_name)), poses


def luminance(bgr):
    b, g, r = (float(value) for value in bgr)
    return 0.114 * b + 0.587 * g + 0.299 * r


def test_id_labels_are_boxes_above_each_person_that_do_not_overlap_and_contrast_with_their_text():
    from openpose_ros.pose import LABEL_BOX, draw, get_bbox, id_labels

    photo, poses = annotated_poses(CROWD_PHOTO)
    assert len(poses) == 11
    labels = id_labels(poses, photo.shape)
    assert sorted(text for text, _ in labels) == sorted(f'id {pose.id}' for pose in poses)
    boxes = [box for _, box in labels]
    height, width = photo.shape[:2]
    for index, (x0, y0, x1, y1) in enumerate(boxes):
        assert 0 <= x0 < x1 <= width and 0 <= y0 < y1 <= height
        for other in boxes[index + 1:]:
            assert not (x0 < other[2] and other[0] < x1 and y0 < other[3] and other[1] < y1), (labels, other)
    # Each label starts at its person's left edge, above the person's box where there is room.
    by_text = dict(labels)
    above = sum(by_text[f'id {pose.id}'][3] <= get_bbox(pose)[1] for pose in poses)
    assert above >= 8, labels

    drawn = draw(photo.copy(), poses)
    for text, (x0, y0, x1, y1) in labels:
        region = drawn[y0:y1, x0:x1].reshape(-1, 3)
        box = np.all(region == LABEL_BOX, axis=1)
        assert box.mean() > 0.5, f'{text}: the label is a filled box'
        text_pixels = region[~box]
        assert len(text_pixels) > 10, f'{text}: the box holds the text'
        contrast = np.array([luminance(pixel) for pixel in text_pixels]) - luminance(LABEL_BOX)
        assert np.percentile(contrast, 75) > 150, f'{text}: the text contrasts with its box'
