"""A locustfile for the demo target: the same mix as the native plans."""
import random

from locust import HttpUser, between, task


class InferenceUser(HttpUser):
    wait_time = between(0.5, 1.0)

    @task(3)
    def predict(self):
        inputs = [random.random() for _ in range(8)]
        self.client.post("/predict", json={"inputs": inputs}, name="predict")

    @task(1)
    def health(self):
        self.client.get("/health", name="health")
