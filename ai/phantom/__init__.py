"""Echo phantom: synthetic echocardiography studies whose true measurements are known.

The software analogue of the QA phantoms echo labs scan. `generate_study(out_dir, seed, ...)`
writes one patient ("PHANTOM^ECHO^<seed>", ID "PHANTOM-<seed>") with one study and one series
of four instances, each `NAME.dcm` with its ground truth `NAME.json` beside it:

=========  ==========================================  ==========================================
NAME       object                                      shows
=========  ==========================================  ==========================================
plax       US Multi-frame Image (…5.1.4.1.1.3.1)       parasternal long axis, ``cycles`` beats
a4c        US Multi-frame Image                        apical four chamber, ``cycles`` beats
tr_cw      US Image (…5.1.4.1.1.6.1), single frame     CW through the tricuspid valve (TR jet)
mv_pw      US Image, single frame                      PW at the mitral leaflet tips (E and A)
=========  ==========================================  ==========================================

`make_clip(name, seed, ...)` renders one clip in memory exactly as generate_study writes it
(same keyword arguments), with the label map of every 2D frame (ai.phantom.sector.Label) for
tests that need the masks; `.to_clip()` turns it into an ai.clip.Clip without any DICOM.

Everything follows from the seed (numpy Generator streams, UIDs from `generate_uid(uid_root,
[seed, name])`, study date 2025-01-01 + seed % 365 days): same seed, same bytes. Pixel data is
JPEG baseline YBR_FULL_422 (default) or RGB explicit VR little endian (`compressed=False`).
Frame rate: R waves and end-systole fall exactly on frames (ai.phantom.physiology.cine_timing),
so the ED and ES frames carry the diastolic and systolic values exactly.

Conventions
-----------
- Pixel coordinates are (x, y) = (column, row) of pixel centres, zero-based; frames zero-based.
- Sequence of Ultrasound Regions (PS3.3 C.8.5.5): region 0 is always the 2D tissue region
  (spatial format 1, data type 1, units cm/cm, square pixels, ReferencePixelX0/Y0 = transducer
  apex relative to the region's top-left corner). Doppler images add region 1, the spectrum
  (spatial format 3; data type 4 CW or 3 PW; units X = 4 seconds, Y = 7 cm/s; ReferencePixelX0
  = 0 at time 0; ReferencePixelY0 = baseline, relative to MinY0; PhysicalDeltaY < 0).
  Velocity of image row r: v = ReferencePixelPhysicalValueY + (r − (MinY0 + ReferencePixelY0))
  × PhysicalDeltaY; time of column c: t = (c − (MinX0 + ReferencePixelX0)) × PhysicalDeltaX.
- Sign: flow toward the (apical) transducer is positive and drawn above the baseline. Mitral
  inflow E/A is positive (above), the TR jet negative (below).
- The spectral region starts at 44.5 % of the image height (row 342 of a 768-row image, where
  EchoNet's Doppler models expect it). The ECG is drawn in green (0, 230, 0) — G > 200, R < 100
  — across the bottom of the spectral region, below any velocity the spectrum reaches.

JSON schema ("schema": "echo-node-phantom/1")
---------------------------------------------
Every document::

    schema, clip (NAME), file ("NAME.dcm"), seed, sop_instance_uid, study_instance_uid,
    series_instance_uid, rows, columns, number_of_frames, frame_time_ms (null for Doppler),
    heart_rate_bpm, compressed, view ("plax" | "a4c" | "doppler"),
    regions: [ {spatial_format, data_type, flags, min_x0, min_y0, max_x1, max_y1,
                physical_units_x, physical_units_y, physical_delta_x, physical_delta_y,
                reference_pixel_x0, reference_pixel_y0, reference_physical_value_x,
                reference_physical_value_y} ]      # the fields of ai.clip.UltrasoundRegion
    expected: {NAME: {"value": float, "unit": UCUM}}   # study-level answers, ai.findings names

plax adds::

    ed_frames, es_frames: [int]          # end-diastole (R waves, incl. the last frame), end-systole
    r_wave_times_s: [float]              # time of each ED frame from frame 0
    diastolic: {IVSd_cm, LVIDd_cm, LVPWd_cm};  systolic: {IVSs_cm, LVIDs_cm, LVPWs_cm}
    keypoint_order: ["LVPW epicardium", "LVPW endocardium", "IVS LV side", "IVS RV side"]
    frames: [ {index, time_s, keypoints_px: [[x, y] × 4], LVPW_cm, LVID_cm, IVS_cm} ]
    expected: IVSd, LVIDd, LVPWd, LVIDs (cm)

  The keypoints are EchoNet-LVH's four points (pt0 → pt3, posterior to anterior); the lengths
  are |pt0−pt1| = LVPW, |pt1−pt2| = LVID, |pt2−pt3| = IVS with the region's PhysicalDelta.

a4c adds::

    ed_frames, es_frames, r_wave_times_s    # as above
    edv_ml, esv_ml, ef_percent
    frames: [ {index, time_s, lv_volume_ml, lv_length_cm, lv_area_cm2,
               lv_outline_px: [[x, y] × 65],   # lateral annulus → apex → septal annulus
               apex_px: [x, y], mitral_annulus_px: [[x, y], [x, y]]} ]
    expected: LVEDV, LVESV (ml), LVEF (%)

  The LV cavity is the closed outline (fill it to get the mask: cv2.fillPoly); it is a half
  ellipse, so its area is π·a·L/2 and the method of disks gives the true volume (2/3)·π·a²·L.

tr_cw and mv_pw add::

    doppler_mode: "CW" | "PW";  spectral_region_index: 1;  baseline_row (absolute image row)
    sweep_s: seconds across the spectral region
    beats: [ {r_wave_time_s, rr_s, <wave>: {peak_velocity_cm_s (signed), peak_time_s,
              peak_column, peak_row (float), start_s, end_s}} ]   # only beats fully in view
           with <wave> "TR" (tr_cw) or "E" and "A" (mv_pw); times from the region's left edge
    ecg: {rgb: [0, 230, 0], rows: [top, bottom], columns: [x0, x1], r_wave_times_s}
    expected: TR_Vmax (m/s): the highest drawn beat, as echocardiographers report it
              MV_E, MV_A (cm/s): means over the drawn beats; MV_E_A (1) = MV_E / MV_A
              (beats vary: TR peaks 0–6 % below the patient's jet, E and A ±4 %)

  peak_velocity_cm_s is the envelope as drawn (its extreme at a column centre); the lit
  spectrum reaches exactly to it, so measuring the image gives it to within one pixel.
"""

from ai.phantom.study import (
    CLIP_NAMES,
    DEFAULT_UID_ROOT,
    SCHEMA,
    RenderedClip,
    generate_study,
    make_clip,
    region_of,
)

__all__ = [
    "CLIP_NAMES",
    "DEFAULT_UID_ROOT",
    "SCHEMA",
    "RenderedClip",
    "generate_study",
    "make_clip",
    "region_of",
]
