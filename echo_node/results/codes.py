"""Every coded concept Echo Node writes into its result objects, named by meaning.

Codes are pydicom `Code` values (immutable; highdicom accepts them wherever it takes a
`CodedConcept`). The comment on each says the template (TID) or context group (CID) of PS3.16 it
comes from; tests/test_results_sr.py checks each against pydicom's tables generated from PS3.16
(the few that are enumerated values of template rows, absent from any CID table, are named
there). SNOMED codes use the SCT scheme (the SRT codes of older editions of TID 5200 are
retired; pydicom maps them). Which code a reported value gets, per template, is in coding.py.

No code of a private scheme is used: dciodvfy recognises a fixed list of coding scheme
designators and ignores a Coding Scheme Identification Sequence, so a "99..." scheme would be a
warning on every SR; where DICOM has no concept (an AI estimate as a method, relative wall
thickness), the value is post-coordinated from standard concepts instead (docs/REPORTING.md).
"""

from __future__ import annotations

from pydicom.sr.coding import Code

# --- Document title and structure (TID 5200 / 5202 / 5203) -------------------------------------

# TID 5200 row 1, document title (CID 12245 lists the paediatric/fetal variants).
ADULT_ECHO_REPORT = Code("125200", "DCM", "Adult Echocardiography Procedure Report")
TEMPLATE_ID_ECHO = "5200"  # ContentTemplateSequence TemplateIdentifier, mapping resource DCMR
# TID 5202 row 1, one container per anatomic section.
FINDINGS = Code("121070", "DCM", "Findings")
# TID 5202 row 2, HAS CONCEPT MOD of the section; value is $SectionSubject.
FINDING_SITE = Code("363698007", "SCT", "Finding Site")
# TID 5202 row 3, the measurement group container (one per image mode here).
MEASUREMENT_GROUP = Code("125007", "DCM", "Measurement Group")
# TID 5202/5203, HAS CONCEPT MOD; values from CID 12224 "Ultrasound Image Modes".
IMAGE_MODE = Code("399264008", "SCT", "Image Mode")
# TID 5203, HAS CONCEPT MOD; values from CID 12226 "Echocardiography Image View".
IMAGE_VIEW = Code("111031", "DCM", "Image View")
# TID 5203, HAS CONCEPT MOD; values from CID 12233 "Cardiac Phase".
CARDIAC_CYCLE_POINT = Code("272518008", "SCT", "Cardiac Cycle Point")
# TID 5203, HAS CONCEPT MOD; values from CID 12221 "Flow Direction".
FLOW_DIRECTION = Code("260674002", "SCT", "Direction of Flow")
# TID 5203 $Method, HAS CONCEPT MOD; values from CID 12227 (and CID 12232 for LV mass).
MEASUREMENT_METHOD = Code("370129005", "SCT", "Measurement Method")
# TID 300 row 3 (TID 5203, TID 5301 row 3), HAS CONCEPT MOD; values from CID 3627
# "Measurement Type" (PS3.17 N.2): how one value was derived from several samples.
DERIVATION = Code("121401", "DCM", "Derivation")
# TID 300/320, INFERRED FROM the SCOORD / IMAGE a value was measured on.
SOURCE_OF_MEASUREMENT = Code("121112", "DCM", "Source of Measurement")
# Free-text items: a note of the document, and a qualification on a value (HAS PROPERTIES).
COMMENT = Code("121106", "DCM", "Comment")
# HAS PROPERTIES TEXT on a calculated value: its formula.
CALCULATION_DESCRIPTION = Code("112034", "DCM", "Calculation Description")
# TID 1210 (included by TID 300), HAS CONCEPT MOD TEXT: the plain name of a post-coordinated
# concept ("Relative Wall Thickness" for a Ratio of Thickness).
EQUIVALENT_MEANING = Code("121050", "DCM", "Equivalent Meaning of Concept Name")

# --- Section subjects ($SectionSubject of TID 5200 rows 9-15) ---------------------------------

LEFT_VENTRICLE = Code("87878005", "SCT", "Left Ventricle")
RIGHT_VENTRICLE = Code("53085002", "SCT", "Right Ventricle")
LEFT_ATRIUM = Code("82471001", "SCT", "Left Atrium")
AORTIC_VALVE = Code("34202007", "SCT", "Aortic Valve")
MITRAL_VALVE = Code("91134007", "SCT", "Mitral Valve")
TRICUSPID_VALVE = Code("46030003", "SCT", "Tricuspid Valve")
AORTA = Code("15825003", "SCT", "Aorta")

# --- Anatomic sites (CID 12305 "Basic Echo Anatomic Site", CID 12236, CID 12235) ---------------

INTERVENTRICULAR_SEPTUM = Code("589001", "SCT", "Interventricular septum")
LV_BASAL_INFEROLATERAL = Code("396652009", "SCT", "left ventricle basal inferolateral segment")
AORTIC_ROOT = Code("8128003", "SCT", "Aortic Root")
ASCENDING_AORTA = Code("54247002", "SCT", "Ascending aorta")
RV_BASAL_SEGMENT = Code("277635008", "SCT", "Right Ventricle Basal Segment")
LVOT_SITE = Code("13418002", "SCT", "Left ventricle outflow tract")
LATERAL_MITRAL_ANNULUS = Code("399086000", "SCT", "Lateral Mitral Annulus")
MEDIAL_MITRAL_ANNULUS = Code("399093001", "SCT", "Medial Mitral Annulus")

# --- Image modes (CID 12224) --------------------------------------------------------------------

MODE_2D = Code("399064001", "SCT", "2D mode")
MODE_M = Code("399155008", "SCT", "M mode")
MODE_DOPPLER_PULSED = Code("261199008", "SCT", "Doppler Pulsed")
MODE_DOPPLER_CW = Code("261198000", "SCT", "Doppler Continuous Wave")

# --- Image views (CID 12226) --------------------------------------------------------------------

VIEW_PLAX = Code("399139001", "SCT", "Parasternal long axis")
VIEW_A4C = Code("399214001", "SCT", "Apical four chamber")

# --- Cardiac phases (CID 12233; CID 12307 for TID 5302) -----------------------------------------

END_DIASTOLE = Code("416190007", "SCT", "End Diastole")
END_SYSTOLE = Code("416430001", "SCT", "End Systole")
E_WAVE = Code("444392003", "SCT", "Diastolic Rapid Inflow (E-wave)")
A_WAVE = Code("59972007", "SCT", "Atrial Systole (A-wave)")

# --- Flow directions (CID 12221; CID 12306 for TID 5302) ----------------------------------------

REGURGITANT_FLOW = Code("397417004", "SCT", "Regurgitant Flow")
ANTEGRADE = Code("263677008", "SCT", "Antegrade Direction")
RETROGRADE = Code("312004007", "SCT", "Retrograde Direction")

# --- Derivation (CID 3627 "Measurement Type"; CID 3488 "Min/Max/Mean") --------------------------

MEAN = Code("373098007", "SCT", "Mean")
MEDIAN = Code("373099004", "SCT", "Median")
# CID 3627 has no maximum; the Derivation value set is extensible (DCID) and Maximum is the
# standard concept for it (CID 3488 "Min/Max/Mean", CID 12301 "Measurement Selection Reason").
MAXIMUM = Code("56851009", "SCT", "Maximum")
# CID 3627: a value the network estimates from the cine loop, neither caliper nor calculation.
ESTIMATED = Code("414135002", "SCT", "Estimated")

# --- Measurement methods (CID 12227, CID 12232, CID 3663) --------------------------------------

SIMPLIFIED_BERNOULLI = Code("125218", "DCM", "Simplified Bernoulli")
# CID 12232 "Myocardium Mass Method": the linear (cube) formula of ASE, named after the M-mode
# it was defined on; the Image Mode modifier says the dimensions came from 2D.
LV_MASS_LINEAR = Code("125221", "DCM", "Left Ventricle Mass by M-mode")
# CID 3663 "Body Surface Area Equation": DuBois and DuBois.
BSA_DUBOIS = Code("122241", "DCM", "BSA = 0.007184*WT^0.425*HT^0.725")

# --- Measurement concepts (LOINC, TID 5200-era CIDs 12200-12222) --------------------------------

# CID 12201 "Left Ventricle Linear".
IVSD = Code("18154-5", "LN", "Interventricular Septum Diastolic Thickness")
LVIDD = Code("29436-3", "LN", "Left Ventricle Internal End Diastolic Dimension")
LVIDS = Code("29438-9", "LN", "Left Ventricle Internal Systolic Dimension")
LVPWD = Code("18152-9", "LN", "Left Ventricle Posterior Wall Diastolic Thickness")
LV_FRACTIONAL_SHORTENING = Code("18051-3", "LN", "Left Ventricular Fractional Shortening")
# CID 12203 "Left Ventricle Other Measurement".
LV_MASS = Code("18087-7", "LN", "Left Ventricle Mass")
E_PRIME_PEAK = Code("399133000", "SCT", "Left Ventricular Peak Early Diastolic Tissue Velocity")
# CID 12204 "Echocardiography Right Ventricle Measurement" has no basal dimension (only RVIDd
# 20304-2, the PLAX/M-mode internal dimension); the A4C basal diameter is a CID 12300 concept,
# used in the Right Ventricle section (the section's context group is extensible).
RV_BASAL_DIMENSION = Code("80080-5", "LN", "Right ventricular basal dimension 4C")
# CID 12205 "Echocardiography Left Atrium Measurement".
LA_AP_SYSTOLIC = Code("29469-4", "LN", "Left Atrium Antero-posterior Systolic Dimension")
# CID 12212 "Echocardiography Aorta Measurement".
AORTIC_ROOT_DIAMETER = Code("18015-8", "LN", "Aortic Root Diameter")
ASCENDING_AORTA_DIAMETER = Code("18012-5", "LN", "Ascending Aortic Diameter")
# CID 12202 "Left Ventricle Volume" (ejection fraction lives there).
LVEF = Code("18043-0", "LN", "Left Ventricular Ejection Fraction by US")
# CID 12207 "Mitral Valve Measurements".
MV_E_PEAK = Code("18037-2", "LN", "Mitral Valve E-Wave Peak Velocity")
MV_A_PEAK = Code("17978-8", "LN", "Mitral Valve A-Wave Peak Velocity")
MV_E_A_RATIO = Code("18038-0", "LN", "Mitral Valve E to A Ratio")
# CID 12222 "Orifice Flow Properties" (used in the valve sections of CIDs 12207-12211).
PEAK_BLOOD_VELOCITY = Code("20355-4", "LN", "Peak Blood Velocity")
PEAK_GRADIENT = Code("20247-3", "LN", "Peak Gradient")
# CID 12303 / SCT: a ratio, post-coordinated (relative wall thickness has no concept of its own).
RATIO = Code("118586006", "SCT", "Ratio")

# --- TID 5201 Echocardiography Patient Characteristics ------------------------------------------

PATIENT_CHARACTERISTICS = Code("121118", "DCM", "Patient Characteristics")
# Height and weight are enumerated values of TID 5201 rows (LOINC), in no CID: not in
# pydicom's tables. BSA is (CID 3455).
PATIENT_HEIGHT = Code("8302-2", "LN", "Patient Height")
PATIENT_WEIGHT = Code("29463-7", "LN", "Patient Weight")
BODY_SURFACE_AREA = Code("8277-6", "LN", "Body Surface Area")
# CID 12220 "Echocardiography Common Measurement" (in every section's CID).
HEART_RATE = Code("8867-4", "LN", "Heart rate")

# --- Algorithm identification (TID 4019), device observer (TID 1004) ------------------------------

ALGORITHM_FAMILY = Code("111000", "DCM", "Algorithm Family")
ALGORITHM_NAME = Code("111001", "DCM", "Algorithm Name")
ALGORITHM_VERSION = Code("111003", "DCM", "Algorithm Version")
ALGORITHM_PARAMETERS = Code("111002", "DCM", "Algorithm Parameters")
# CID 7162 "Surface Processing Algorithm Family", the value set of TID 4019's family row.
ARTIFICIAL_INTELLIGENCE = Code("123110", "DCM", "Artificial Intelligence")
EDGE_DETECTION = Code("123103", "DCM", "Edge Detection")  # the classical Doppler envelope
OBSERVER_TYPE_DEVICE = Code("121007", "DCM", "Device")
# PS3.3 C.12.1.1.7 Purpose of Reference for Contributing Equipment (CID 7005).
PROCESSING_EQUIPMENT = Code("109102", "DCM", "Processing Equipment")
# CID 7006 "SR Document Purpose of Reference": an overlay SC names the SR whose values it shows.
SOURCE_DOCUMENT = Code("121335", "DCM", "Source Document")

# --- UCUM units (CID 7181 "Abstract Multi-dimensional Image Model Component Units") -------------

UNIT_CM = Code("cm", "UCUM", "cm")
UNIT_PERCENT = Code("%", "UCUM", "Percent")
UNIT_CM_PER_S = Code("cm/s", "UCUM", "centimeter/second")
UNIT_RATIO = Code("{ratio}", "UCUM", "ratio")
UNIT_MMHG = Code("mm[Hg]", "UCUM", "mmHg")
UNIT_PER_MIN = Code("/min", "UCUM", "/min")
# UCUM's own codes (TID 5201 rows name them); CID 7181 lists no mass or area unit.
UNIT_G = Code("g", "UCUM", "gram")
UNIT_KG = Code("kg", "UCUM", "kilogram")
UNIT_M2 = Code("m2", "UCUM", "square meter")

# --- TID 5300 Simplified Echo Procedure Report (Sup 169; PS3.16 TID 5300-5303) -----------------

TEMPLATE_ID_SIMPLIFIED_ECHO = "5300"  # root title stays ADULT_ECHO_REPORT (PS3.17 CCCC.5)
# TID 5300 measurement containers.
PRE_COORDINATED_MEASUREMENTS = Code("125301", "DCM", "Pre-coordinated Measurements")
POST_COORDINATED_MEASUREMENTS = Code("125302", "DCM", "Post-coordinated Measurements")
# TID 5301/5302, HAS PROPERTIES TEXT: the display label of a value.
SHORT_LABEL = Code("125309", "DCM", "Short Label")
# TID 5302, HAS CONCEPT MOD; values from CID 12303 / 12302 / 12304.
MEASUREMENT_TYPE = Code("125306", "DCM", "Measurement Type")
FINDING_OBSERVATION_TYPE = Code("125305", "DCM", "Finding Observation Type")
MEASURED_PROPERTY = Code("125307", "DCM", "Measured Property")
# CID 12303 "Echo Measurement Type".
DIRECTLY_MEASURED = Code("125316", "DCM", "Directly measured")
CALCULATED = Code("125315", "DCM", "Calculated")
# CID 12302 "Echo Finding Observation Type".
STRUCTURE_OF_FINDING_SITE = Code("125311", "DCM", "Structure of the Finding Site")
BEHAVIOR_OF_FINDING_SITE = Code("125312", "DCM", "Behavior of the Finding Site")
HEMODYNAMIC = Code("44324008", "SCT", "Hemodynamic Measurements")
# CID 12304 "Echo Measured Property".
THICKNESS = Code("59089-3", "LN", "Thickness")
INTERNAL_DIMENSION = Code("59090-1", "LN", "Internal Dimension")
DIAMETER = Code("81827009", "SCT", "Diameter")
PEAK_TISSUE_VELOCITY = Code("125330", "DCM", "Peak Tissue Velocity")
CARDIAC_EJECTION_FRACTION = Code("70822001", "SCT", "Cardiac ejection fraction")
MASS = Code("118538004", "SCT", "Mass")
FRACTIONAL_SHORTENING = Code("59132-1", "LN", "Fractional Shortening")
PEAK_GRADIENT_PROPERTY = Code("20247-3", "LN", "Peak Gradient [Pressure]")

# --- CID 12300 "Core Echo Measurement" (LOINC; code meanings as in PS3.16) ----------------------

IVSD_2D = Code("79969-2", "LN", "Interventricular septum diastolic dimension 2D")
IVSD_MM = Code("79968-4", "LN", "Interventricular septum diastolic dimension MM")
LVIDD_2D = Code("80007-8", "LN", "Left ventricular internal diastolic dimension - 2D")
LVIDD_MM = Code("80008-6", "LN", "Left ventricular internal diastolic dimension - MM")
LVIDS_2D = Code("80011-0", "LN", "Left ventricular internal systolic dimension - 2D")
LVIDS_MM = Code("80012-8", "LN", "Left ventricular internal systolic dimension - MM")
# Both LVPWd codes carry the same Code Meaning in CID 12300; PS3.17 CCCC.5 labels 80031-8
# "LVPWd (2D)", which leaves 80032-6 as the M-mode one.
LVPWD_2D = Code("80031-8", "LN", "Left ventricular posterior wall diastolic thickness")
LVPWD_MM = Code("80032-6", "LN", "Left ventricular posterior wall diastolic thickness")
AORTIC_ROOT_DIAMETER_5300 = Code("79953-6", "LN", "Aortic root diameter")
ASCENDING_AORTA_DIMENSION = Code("79966-8", "LN", "Ascending Aorta Dimension")
LA_DIAMETER_2D = Code("79975-9", "LN", "Left atrial end systolic diameter (AP) 2D")
LA_DIAMETER_MM = Code("79977-5", "LN", "Left atrial end systolic diameter (AP) MM")
TR_VMAX = Code("79921-3", "LN", "Tricuspid regurgitation Vmax")
AV_VMAX = Code("79964-3", "LN", "Aortic valve Vmax")
MV_E_VMAX = Code("80070-6", "LN", "Mitral valve E-wave Vmax")
MV_A_VMAX = Code("80066-4", "LN", "Mitral valve A-wave Vmax")
MR_VMAX = Code("80062-3", "LN", "Mitral regurgitation Vmax")
LVOT_VMAX = Code("80029-2", "LN", "Left ventricular outflow tract Vmax")
MV_LATERAL_E_PRIME = Code("80054-0", "LN", "Mitral lateral e-prime Vmax")
MV_SEPTAL_E_PRIME = Code("79911-4", "LN", "Mitral septal e-prime Vmax")
TR_PEAK_GRADIENT = Code("79937-9", "LN", "Tricuspid regurgitation peak gradient")
AV_PEAK_GRADIENT = Code("79963-5", "LN", "Aortic valve peak instantaneous gradient")
LV_MASS_2D = Code("80019-3", "LN", "Left ventricular mass (dimension method) 2D")
LV_FS_2D = Code("29434-8", "LN", "Left ventricular fractional shortening (of minor axis) (2D)")
# MV_E_A_RATIO (18038-0) above is in CID 12300 as well.

# TID 1500 row 4, Procedure Reported (echo_node/results/tid1500.py): the echo procedure code of
# CID 12001.
ECHOCARDIOGRAPHY = Code("40701008", "SCT", "Echocardiography")
