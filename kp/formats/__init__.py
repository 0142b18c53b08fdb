"""The file formats kp reads and writes, one module each: DeepLabCut's label and analysis CSV (dlc_csv) and kp
predict's predictions.csv (predictions_csv). COCO keypoints JSON is read by its loader, kp.data.coco."""
