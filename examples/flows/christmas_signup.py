"""The Christmas-campaign signup handler, served as deployment christmas-signup-handler/website.

flowgate's route `christmas-signup` creates runs of this deployment; the 14 typed parameters are
what Prefect publishes as the deployment's parameter schema.
"""

from prefect import flow


@flow(name="christmas-signup-handler", log_prints=True)
def christmas_signup_handler(
    email: str,
    first_name: str,
    business_name: str,
    assessment_score: int,
    red_systems: int,
    orange_systems: int,
    yellow_systems: int,
    green_systems: int,
    gps_score: int,
    money_score: int,
    marketing_score: int,
    weakest_system_1: str,
    weakest_system_2: str,
    revenue_leak_total: int,
) -> dict:
    print(f"signup from {first_name} ({business_name}), assessment score {assessment_score}")
    return {"status": "success", "email": email}


if __name__ == "__main__":
    christmas_signup_handler.serve(name="website")
