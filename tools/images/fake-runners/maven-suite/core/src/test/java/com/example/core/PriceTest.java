package com.example.core;

import org.junit.jupiter.api.Test;

class PriceTest {
    @Test
    void roundsHalfUp() {}

}
