package com.example.shop;

import org.junit.jupiter.api.Test;

class CheckoutTest {
    @Test
    void paysByCard() throws Exception {
        if (CartTest.status() != 200) {
            throw new java.io.IOException("Server returned HTTP response code: 503 for URL: http://127.0.0.1/checkout");
        }
    }

    @Test
    void paysByInvoice() {}
}
