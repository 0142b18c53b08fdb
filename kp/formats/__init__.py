"""The file formats kp reads and writes, one module each: DeepLabCut's label and analysis CSV (dlc_csv) and its
project config.yaml (dlc_config), and kp predict's predictions.csv (predictions_csv). COCO keypoints JSON is read by
its loader (kp.data.coco) and written by kp predict --format coco (kp.predict.writers), each in one place."""
