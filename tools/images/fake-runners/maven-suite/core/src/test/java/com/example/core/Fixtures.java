package com.example.core;

class Fixtures {
    @org.junit.jupiter.api.Test
    void notRun() {}
}
