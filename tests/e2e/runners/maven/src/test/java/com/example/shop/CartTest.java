package com.example.shop;

import static org.junit.jupiter.api.Assertions.assertEquals;

import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;

/** Fails while the state file says "down": a stand-in for a staging app a redeploy fixes. */
class CartTest {
    static int status() throws Exception {
        String state = Files.readString(Path.of(System.getenv("STATE_FILE"))).trim();
        return state.equals("up") ? 200 : 503;
    }

    @Test
    void addsItems() throws Exception {
        assertEquals(200, status(), "HTTP status");
    }

    @Test
    void showsTheTotal() {
        assertEquals(2, 1 + 1);
    }
}
