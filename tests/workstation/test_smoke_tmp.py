def test_smoke(workstation, case_png):
    r = workstation.upload(case_png)
    print(r.status_code, r.json())
    sid = r.json()["id"]
    pid = r.json()["predictions"][0]["id"]
    r = workstation.client.get(f"/api/predictions/{pid}/heatmap/0.png", headers=workstation.headers["researcher"])
    print(r.status_code, len(r.content))
    r = workstation.client.post(f"/api/studies/{sid}/feedback", headers=workstation.headers["clinician"], json={"prediction_id": pid, "agrees": False, "corrected_label": "1", "comment": "x"})
    print(r.status_code, r.json())
    r = workstation.client.get("/api/studies?sort=disagreement", headers=workstation.headers["researcher"])
    print(r.json())
    r = workstation.client.get("/api/audit", headers=workstation.headers["admin"])
    print([e["action"] for e in r.json()])
