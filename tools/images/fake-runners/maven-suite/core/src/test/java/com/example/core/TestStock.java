package com.example.core;

import org.junit.jupiter.api.Test;

class TestStock {
    @Test
    void countsStock() {}

    @Test
    void reservesStock() {}

}
