"""Every coded concept Echo Node writes into its result objects, named by meaning.

Codes are pydicom `Code` values (immutable; highdicom accepts them wherever it takes a
`CodedConcept`). The comment on each says the template (TID) or context group (CID) of PS3.16 it
comes from. Each one is checked against pydicom's tables generated from PS3.16 in
tests/test_results_sr.py. SNOMED codes use the SCT scheme (the SRT codes of older editions of
TID 5200 are retired; pydicom maps them).

Measurement concepts of the default TID 5200 report are the TID 5200-era LOINC codes (CIDs
12200-12222) that echo carts emit and cardiology reporting systems map (see DESIGN.md §5); the
TID 5300 option uses the CID 12300 "Core Echo Measurement" codes (FINDING_CODING_5300 below).
The one code of the node's own scheme (99ECHONODE, a local scheme per PS3.16 section 8) is the
Measurement Method of the AI ejection fraction, for which CID 12227 has no value.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

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
# TID 300/320, INFERRED FROM the SCOORD / IMAGE a value was measured on.
SOURCE_OF_MEASUREMENT = Code("121112", "DCM", "Source of Measurement")
# TID 5200 free-text notes (pipelines that did not run); concept from CID 3 / DCM.
COMMENT = Code("121106", "DCM", "Comment")

# --- Section subjects ($SectionSubject of TID 5200 rows 9-15) ---------------------------------

LEFT_VENTRICLE = Code("87878005", "SCT", "Left Ventricle")
RIGHT_VENTRICLE = Code("53085002", "SCT", "Right Ventricle")
LEFT_ATRIUM = Code("82471001", "SCT", "Left Atrium")
AORTIC_VALVE = Code("34202007", "SCT", "Aortic Valve")
MITRAL_VALVE = Code("91134007", "SCT", "Mitral Valve")
TRICUSPID_VALVE = Code("46030003", "SCT", "Tricuspid Valve")
AORTA = Code("15825003", "SCT", "Aorta")

# --- Image modes (CID 12224) --------------------------------------------------------------------

MODE_2D = Code("399064001", "SCT", "2D mode")
MODE_M = Code("399155008", "SCT", "M mode")
MODE_DOPPLER_PULSED = Code("261199008", "SCT", "Doppler Pulsed")
MODE_DOPPLER_CW = Code("261198000", "SCT", "Doppler Continuous Wave")

# --- Image views (CID 12226) --------------------------------------------------------------------

VIEW_PLAX = Code("399139001", "SCT", "Parasternal long axis")
VIEW_A4C = Code("399214001", "SCT", "Apical four chamber")

# --- Cardiac phases (CID 12233) -----------------------------------------------------------------

END_DIASTOLE = Code("416190007", "SCT", "End Diastole")
END_SYSTOLE = Code("416430001", "SCT", "End Systole")

# --- Flow directions (CID 12221) ----------------------------------------------------------------

REGURGITANT_FLOW = Code("397417004", "SCT", "Regurgitant Flow")

# --- Measurement concepts (LOINC) ---------------------------------------------------------------

# CID 12201 "Left Ventricle Linear".
IVSD = Code("18154-5", "LN", "Interventricular Septum Diastolic Thickness")
LVIDD = Code("29436-3", "LN", "Left Ventricle Internal End Diastolic Dimension")
LVIDS = Code("29438-9", "LN", "Left Ventricle Internal Systolic Dimension")
LVPWD = Code("18152-9", "LN", "Left Ventricle Posterior Wall Diastolic Thickness")
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
# CID 12222 "Orifice Flow Properties" (used in the AV/TV sections of CID 12208/12211).
PEAK_BLOOD_VELOCITY = Code("20355-4", "LN", "Peak Blood Velocity")

# --- Algorithm identification (TID 4019), device observer (TID 1004) ------------------------------

ALGORITHM_NAME = Code("111001", "DCM", "Algorithm Name")
ALGORITHM_VERSION = Code("111003", "DCM", "Algorithm Version")
OBSERVER_TYPE_DEVICE = Code("121007", "DCM", "Device")
# PS3.3 C.12.1.1.7 Purpose of Reference for Contributing Equipment (CID 7005).
PROCESSING_EQUIPMENT = Code("109102", "DCM", "Processing Equipment")

# --- UCUM units (CID 7181 "Abstract Multi-dimensional Image Model Component Units") -------------

UNIT_CM = Code("cm", "UCUM", "cm")
UNIT_PERCENT = Code("%", "UCUM", "Percent")
UNIT_CM_PER_S = Code("cm/s", "UCUM", "centimeter/second")
UNIT_RATIO = Code("{ratio}", "UCUM", "ratio")


@dataclass(frozen=True)
class MeasurementCoding:
    """How one `ai.findings.Finding` name is written in a TID 5200 report."""

    section: Code  # $SectionSubject of the TID 5202 section (the Finding Site)
    concept: Code  # the NUM's concept name
    unit: Code  # the UCUM unit the value is written in
    cardiac_phase: Code | None = None  # Cardiac Cycle Point, where the concept implies one
    flow_direction: Code | None = None  # Direction of Flow, where the concept needs one
    # Image mode when the clip does not say (a spectral clip without PW/CW): the one the
    # measurement is made with in practice (TR Vmax by CW, mitral inflow by PW).
    default_mode: Code | None = None
    # Finding Site (TID 300 HAS CONCEPT MOD) on the NUM, where the section alone does not say
    # where it was measured (LVOT inside the Left Ventricle section, the e' annulus side).
    finding_site: Code | None = None


# Finding.name (ai/findings.py) -> coding. The phase is the one the LOINC concept is defined at;
# the peak velocities carry none (the wave names them). TR Vmax is the generic Peak Blood
# Velocity post-coordinated with Regurgitant Flow inside the Tricuspid Valve section, as carts do.
FINDING_CODING: Mapping[str, MeasurementCoding] = MappingProxyType(
    {
        "IVSd": MeasurementCoding(LEFT_VENTRICLE, IVSD, UNIT_CM, END_DIASTOLE),
        "LVIDd": MeasurementCoding(LEFT_VENTRICLE, LVIDD, UNIT_CM, END_DIASTOLE),
        "LVPWd": MeasurementCoding(LEFT_VENTRICLE, LVPWD, UNIT_CM, END_DIASTOLE),
        "LVIDs": MeasurementCoding(LEFT_VENTRICLE, LVIDS, UNIT_CM, END_SYSTOLE),
        "LVEF": MeasurementCoding(LEFT_VENTRICLE, LVEF, UNIT_PERCENT),
        "RVbase": MeasurementCoding(RIGHT_VENTRICLE, RV_BASAL_DIMENSION, UNIT_CM, END_DIASTOLE),
        "LAd": MeasurementCoding(LEFT_ATRIUM, LA_AP_SYSTOLIC, UNIT_CM, END_SYSTOLE),
        "AoRoot": MeasurementCoding(AORTA, AORTIC_ROOT_DIAMETER, UNIT_CM, END_DIASTOLE),
        "AoAsc": MeasurementCoding(AORTA, ASCENDING_AORTA_DIAMETER, UNIT_CM, END_DIASTOLE),
        "MV_E": MeasurementCoding(
            MITRAL_VALVE, MV_E_PEAK, UNIT_CM_PER_S, default_mode=MODE_DOPPLER_PULSED
        ),
        "MV_A": MeasurementCoding(
            MITRAL_VALVE, MV_A_PEAK, UNIT_CM_PER_S, default_mode=MODE_DOPPLER_PULSED
        ),
        "MV_E_A": MeasurementCoding(
            MITRAL_VALVE, MV_E_A_RATIO, UNIT_RATIO, default_mode=MODE_DOPPLER_PULSED
        ),
        "TR_Vmax": MeasurementCoding(
            TRICUSPID_VALVE,
            PEAK_BLOOD_VELOCITY,
            UNIT_CM_PER_S,
            flow_direction=REGURGITANT_FLOW,
            default_mode=MODE_DOPPLER_CW,
        ),
        "AV_Vmax": MeasurementCoding(
            AORTIC_VALVE, PEAK_BLOOD_VELOCITY, UNIT_CM_PER_S, default_mode=MODE_DOPPLER_CW
        ),
    }
)

# --- TID 5300 Simplified Echo Procedure Report (Sup 169; PS3.16 TID 5300-5303) -----------------

TEMPLATE_ID_SIMPLIFIED_ECHO = "5300"  # root title stays ADULT_ECHO_REPORT (PS3.17 CCCC.5)
# TID 5300 measurement containers.
PRE_COORDINATED_MEASUREMENTS = Code("125301", "DCM", "Pre-coordinated Measurements")
POST_COORDINATED_MEASUREMENTS = Code("125302", "DCM", "Post-coordinated Measurements")
# TID 5301/5302, HAS PROPERTIES TEXT: the display label of a value.
SHORT_LABEL = Code("125309", "DCM", "Short Label")
# TID 5302, HAS CONCEPT MOD; values from CID 12303 / 12302 / 12304 / 12227.
MEASUREMENT_TYPE = Code("125306", "DCM", "Measurement Type")
FINDING_OBSERVATION_TYPE = Code("125305", "DCM", "Finding Observation Type")
MEASURED_PROPERTY = Code("125307", "DCM", "Measured Property")
MEASUREMENT_METHOD = Code("370129005", "SCT", "Measurement Method")
# CID 12303 "Echo Measurement Type".
DIRECTLY_MEASURED = Code("125316", "DCM", "Directly measured")
# CID 12302 "Echo Finding Observation Type".
BEHAVIOR_OF_FINDING_SITE = Code("125312", "DCM", "Behavior of the Finding Site")
# CID 12304 "Echo Measured Property".
CARDIAC_EJECTION_FRACTION = Code("70822001", "SCT", "Cardiac ejection fraction")
# CID 12227 is extensible and has no AI method: a local code says it is neither Method of
# Disks nor Teichholz, so receivers never merge the value with one that is.
LOCAL_SCHEME = "99ECHONODE"
NEURAL_VIDEO_REGRESSION = Code("NNVR", LOCAL_SCHEME, "Neural network regression from the cine loop")

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
AORTIC_ROOT_DIAMETER = Code("79953-6", "LN", "Aortic root diameter")
ASCENDING_AORTA_DIMENSION = Code("79966-8", "LN", "Ascending Aorta Dimension")
LA_DIAMETER_2D = Code("79975-9", "LN", "Left atrial end systolic diameter (AP) 2D")
LA_DIAMETER_MM = Code("79977-5", "LN", "Left atrial end systolic diameter (AP) MM")
RV_BASAL_DIMENSION = Code("80080-5", "LN", "Right ventricular basal dimension 4C")
TR_VMAX = Code("79921-3", "LN", "Tricuspid regurgitation Vmax")
AV_VMAX = Code("79964-3", "LN", "Aortic valve Vmax")
MV_E_VMAX = Code("80070-6", "LN", "Mitral valve E-wave Vmax")
MV_A_VMAX = Code("80066-4", "LN", "Mitral valve A-wave Vmax")
MR_VMAX = Code("80062-3", "LN", "Mitral regurgitation Vmax")
LVOT_VMAX = Code("80029-2", "LN", "Left ventricular outflow tract Vmax")
MV_LATERAL_E_PRIME = Code("80054-0", "LN", "Mitral lateral e-prime Vmax")
MV_SEPTAL_E_PRIME = Code("79911-4", "LN", "Mitral septal e-prime Vmax")
# MV_E_A_RATIO (18038-0) above is in CID 12300 as well.


@dataclass(frozen=True)
class PreCoordinated:
    """A finding written in TID 5301: one CID 12300 code says everything (site, phase, mode)."""

    concept: Code  # the 2D code, or the only one where the code names no image mode
    unit: Code
    label: str  # Short Label; " (2D)"/" (MM)" is added where the code is mode-specific
    mmode: Code | None = None  # the M-mode code, where CID 12300 has one


@dataclass(frozen=True)
class PostCoordinated:
    """A finding without a CID 12300 code, written in TID 5302 with its meaning in modifiers."""

    concept: Code
    unit: Code
    label: str
    measurement_type: Code  # CID 12303
    finding_site: Code  # CID 12305
    observation_type: Code  # CID 12302
    measured_property: Code  # CID 12304
    method: Code  # CID 12227 (extensible)
    view: Code | None = None  # Image View (CID 12226), where the view is significant


# Finding.name -> TID 5300 coding. A name missing here is stated in the report, never dropped.
FINDING_CODING_5300: Mapping[str, PreCoordinated | PostCoordinated] = MappingProxyType(
    {
        "IVSd": PreCoordinated(IVSD_2D, UNIT_CM, "IVSd", mmode=IVSD_MM),
        "LVIDd": PreCoordinated(LVIDD_2D, UNIT_CM, "LVIDd", mmode=LVIDD_MM),
        "LVIDs": PreCoordinated(LVIDS_2D, UNIT_CM, "LVIDs", mmode=LVIDS_MM),
        "LVPWd": PreCoordinated(LVPWD_2D, UNIT_CM, "LVPWd", mmode=LVPWD_MM),
        "AoRoot": PreCoordinated(AORTIC_ROOT_DIAMETER, UNIT_CM, "Ao Root"),
        "AoAsc": PreCoordinated(ASCENDING_AORTA_DIMENSION, UNIT_CM, "Ao Asc"),
        "LAd": PreCoordinated(LA_DIAMETER_2D, UNIT_CM, "LA Dimen", mmode=LA_DIAMETER_MM),
        "RVbase": PreCoordinated(RV_BASAL_DIMENSION, UNIT_CM, "RVD1 (4C)"),
        "TR_Vmax": PreCoordinated(TR_VMAX, UNIT_CM_PER_S, "TR Vmax"),
        "AV_Vmax": PreCoordinated(AV_VMAX, UNIT_CM_PER_S, "AV Vmax"),
        "MV_E": PreCoordinated(MV_E_VMAX, UNIT_CM_PER_S, "MV E Vmax"),
        "MV_A": PreCoordinated(MV_A_VMAX, UNIT_CM_PER_S, "MV A Vmax"),
        "MV_E_A": PreCoordinated(MV_E_A_RATIO, UNIT_RATIO, "MV E/A"),
        "MR_Vmax": PreCoordinated(MR_VMAX, UNIT_CM_PER_S, "MR Vmax"),
        "LVOT_Vmax": PreCoordinated(LVOT_VMAX, UNIT_CM_PER_S, "LVOT Vmax"),
        "e_lat": PreCoordinated(MV_LATERAL_E_PRIME, UNIT_CM_PER_S, "e' lat"),
        "e_med": PreCoordinated(MV_SEPTAL_E_PRIME, UNIT_CM_PER_S, "e' sept"),
        # EchoNet-Dynamic regresses EF from one apical 4-chamber clip: not Method of Disks, so
        # not 79993-2 "single plane 4C (MOD)"; the generic LOINC EF by US, post-coordinated.
        "LVEF": PostCoordinated(
            LVEF,
            UNIT_PERCENT,
            "LVEF (A4C, AI)",
            measurement_type=DIRECTLY_MEASURED,
            finding_site=LEFT_VENTRICLE,
            observation_type=BEHAVIOR_OF_FINDING_SITE,
            measured_property=CARDIAC_EJECTION_FRACTION,
            method=NEURAL_VIDEO_REGRESSION,
            view=VIEW_A4C,
        ),
    }
)

# --- Doppler findings of the EchoNet-Measurements models (ai/pipelines/doppler_neural.py) ------
# MR Vmax: Peak Blood Velocity (CID 12207 lists it) in the Mitral Valve section with Direction of
# Flow = Regurgitant, as TR Vmax in the Tricuspid Valve section. LVOT Vmax: Peak Blood Velocity
# (CID 12200) in the Left Ventricle section with Finding Site = LVOT. e': the TID 5200-era
# concept of CID 12203 "Left Ventricle Other Measurement" in the Left Ventricle section, the
# annulus side as Finding Site (CID 12235 "Mitral Valve Anatomic Site").

# CID 12236 "Echocardiography Anatomic Site".
LVOT_SITE = Code("13418002", "SCT", "Left ventricle outflow tract")
# CID 12235 "Mitral Valve Anatomic Site".
LATERAL_MITRAL_ANNULUS = Code("399086000", "SCT", "Lateral Mitral Annulus")
MEDIAL_MITRAL_ANNULUS = Code("399093001", "SCT", "Medial Mitral Annulus")
# CID 12203 "Left Ventricle Other Measurement".
E_PRIME_PEAK = Code("399133000", "SCT", "Left Ventricular Peak Early Diastolic Tissue Velocity")

FINDING_CODING = MappingProxyType(
    {
        **FINDING_CODING,
        "MR_Vmax": MeasurementCoding(
            MITRAL_VALVE,
            PEAK_BLOOD_VELOCITY,
            UNIT_CM_PER_S,
            flow_direction=REGURGITANT_FLOW,
            default_mode=MODE_DOPPLER_CW,
        ),
        "LVOT_Vmax": MeasurementCoding(
            LEFT_VENTRICLE,
            PEAK_BLOOD_VELOCITY,
            UNIT_CM_PER_S,
            default_mode=MODE_DOPPLER_PULSED,
            finding_site=LVOT_SITE,
        ),
        "e_lat": MeasurementCoding(
            LEFT_VENTRICLE,
            E_PRIME_PEAK,
            UNIT_CM_PER_S,
            default_mode=MODE_DOPPLER_PULSED,
            finding_site=LATERAL_MITRAL_ANNULUS,
        ),
        "e_med": MeasurementCoding(
            LEFT_VENTRICLE,
            E_PRIME_PEAK,
            UNIT_CM_PER_S,
            default_mode=MODE_DOPPLER_PULSED,
            finding_site=MEDIAL_MITRAL_ANNULUS,
        ),
    }
)

# Report section order (TID 5200 rows 9-15 order for the sections used here).
SECTION_ORDER: tuple[Code, ...] = (
    LEFT_VENTRICLE,
    RIGHT_VENTRICLE,
    LEFT_ATRIUM,
    AORTIC_VALVE,
    MITRAL_VALVE,
    TRICUSPID_VALVE,
    AORTA,
)

# --- TID 1500 Measurement Report (echo_node/results/tid1500.py) --------------------------------

# TID 1500 row 4, Procedure Reported; the echo procedure code of CID 12001.
ECHOCARDIOGRAPHY = Code("40701008", "SCT", "Echocardiography")
# CID 12300 "Core Echo Measurement": the gradients derived from one peak velocity.
TR_PEAK_GRADIENT = Code("79937-9", "LN", "Tricuspid regurgitation peak gradient")
AV_PEAK_GRADIENT = Code("79963-5", "LN", "Aortic valve peak instantaneous gradient")
# CID 12227 "Echocardiography Measurement Method" (TID 300 Measurement Method).
SIMPLIFIED_BERNOULLI = Code("125218", "DCM", "Simplified Bernoulli")
# TID 300 Derivation, values from CID 3627 "Measurement Type" / CID 7464 (Maximum): how the
# beats of a value were combined.
MEAN = Code("373098007", "SCT", "Mean")
MEDIAN = Code("373099004", "SCT", "Median")
MAXIMUM = Code("56851009", "SCT", "Maximum")
UNIT_MM_HG = Code("mm[Hg]", "UCUM", "mmHg")
