package com.example.api;

import org.junit.jupiter.api.Test;

class OrderTests {
    @Test
    void placesOrder() {}

    @Test
    void cancelsOrder() {}

}
